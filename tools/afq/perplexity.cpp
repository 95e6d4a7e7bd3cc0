// afq perplexity: how well a model (quantized or not) predicts a text, in windows.
#include <fmt/core.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "afq/error.h"
#include "afq/perplexity.h"
#include "commands.h"
#include "model_options.h"

namespace afq::cli {

void add_perplexity_command(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string data;
    int window = 512;
    int64_t max_tokens = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model over a text file");
  add_model_options(cmd, args->model);
  cmd->add_option("--data", args->data, "UTF-8 text file")->required();
  cmd->add_option("--window", args->window, "Tokens per window")->capture_default_str();
  cmd->add_option("--max-tokens", args->max_tokens, "Score at most this many tokens (0: all)");
  cmd->callback([args] {
    std::ifstream in(args->data, std::ios::binary);
    if (!in) throw Error(args->data + ": cannot open");
    std::stringstream text;
    text << in.rdbuf();
    if (args->model.max_context == 0) args->model.max_context = args->window;
    Model model = load_model(args->model);
    Tokenizer tokenizer = load_tokenizer(model_dir(args->model));
    std::vector<int32_t> tokens = tokenizer.encode(text.str(), /*add_special_tokens=*/false);
    if (args->max_tokens > 0 && static_cast<int64_t>(tokens.size()) > args->max_tokens + 1)
      tokens.resize(args->max_tokens + 1);
    PerplexityResult r = perplexity(model, tokens, args->window);
    fmt::print("perplexity {:.3f} ({:.4f} nats/token) over {} tokens in {} windows of {}; {:.0f} tokens/s\n",
               r.perplexity, r.mean_nll, r.tokens_scored, r.windows, args->window,
               r.seconds > 0 ? r.tokens_scored / r.seconds : 0.0);
  });
}

}  // namespace afq::cli
