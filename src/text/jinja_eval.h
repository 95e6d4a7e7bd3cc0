// Runs a parsed template: statements write text, expressions compute values, with jinja2's
// scoping (a for loop's body gets a fresh scope each iteration, so `set` inside a loop does not
// outlive it: templates carry state out of loops in a namespace()).
#pragma once

#include <string>

#include "jinja_ast.h"
#include "jinja_value.h"

namespace afq::jinja {

// Renders `body` with `context` as its variables, over the globals of make_globals(). Throws
// afq::Error "chat template LINE:COL: ..." (one line) where evaluation fails.
std::string render(const Body& body, const Dict& context);

}  // namespace afq::jinja
