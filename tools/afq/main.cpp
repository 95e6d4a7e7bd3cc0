// afq: the command-line tool. Each subcommand lives in its own file and registers itself here.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>

#include "afq/error.h"
#include "afq/version.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"afq: run and convert affine-quantized (MLX / transformers Metal) language models"};
  app.set_version_flag("--version", std::string(afq::version()));
  app.require_subcommand(1);
  afq::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const afq::Error& e) {
    fmt::print(stderr, "afq: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "afq: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
