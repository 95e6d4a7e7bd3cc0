// jinja2's tests (jinja2/tests.py): `value is name(args)`.
#include <algorithm>
#include <iterator>
#include <unordered_map>

#include "jinja_builtins.h"

namespace afq::jinja {

namespace {

bool t_defined(const Value& v, const Args&) { return !v.is_undefined(); }
bool t_undefined(const Value& v, const Args&) { return v.is_undefined(); }
bool t_none(const Value& v, const Args&) { return v.is_none(); }
bool t_boolean(const Value& v, const Args&) { return v.kind() == Value::Kind::kBool; }
bool t_true(const Value& v, const Args&) { return v.kind() == Value::Kind::kBool && v.boolean(); }
bool t_false(const Value& v, const Args&) { return v.kind() == Value::Kind::kBool && !v.boolean(); }
bool t_integer(const Value& v, const Args&) { return v.kind() == Value::Kind::kInt; }
bool t_float(const Value& v, const Args&) { return v.kind() == Value::Kind::kFloat; }
bool t_number(const Value& v, const Args&) { return v.is_number(); }
bool t_string(const Value& v, const Args&) { return v.is_string(); }
bool t_mapping(const Value& v, const Args&) { return v.is_dict(); }
bool t_iterable(const Value& v, const Args&) { return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict(); }
bool t_sequence(const Value& v, const Args&) { return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict(); }
bool t_callable(const Value& v, const Args&) { return v.is_undefined() || v.kind() == Value::Kind::kFunction; }
bool t_escaped(const Value&, const Args&) { return false; }

const Value& test_operand(const Args& a, const char* test) {
  const Value* other = a.get(0, "other");
  if (!other) throw Failure(std::string(test) + "() missing 1 required positional argument");
  return *other;
}

bool t_eq(const Value& v, const Args& a) { return equal(v, test_operand(a, "eq")); }
bool t_ne(const Value& v, const Args& a) { return !equal(v, test_operand(a, "ne")); }
bool t_lt(const Value& v, const Args& a) { return compare(v, test_operand(a, "lt")) < 0; }
bool t_le(const Value& v, const Args& a) { return compare(v, test_operand(a, "le")) <= 0; }
bool t_gt(const Value& v, const Args& a) { return compare(v, test_operand(a, "gt")) > 0; }
bool t_ge(const Value& v, const Args& a) { return compare(v, test_operand(a, "ge")) >= 0; }
bool t_in(const Value& v, const Args& a) { return contains(test_operand(a, "in"), v); }
bool t_sameas(const Value& v, const Args& a) { return v.same_object(test_operand(a, "sameas")); }

bool t_even(const Value& v, const Args&) { return equal(binary_op("%", v, Value(2)), Value(0)); }
bool t_odd(const Value& v, const Args&) { return equal(binary_op("%", v, Value(2)), Value(1)); }
bool t_divisibleby(const Value& v, const Args& a) {
  return equal(binary_op("%", v, test_operand(a, "divisibleby")), Value(0));
}
bool t_lower(const Value& v, const Args&) { return truthy(get_attr(Value(to_str(v)), "islower").function().call({})); }
bool t_upper(const Value& v, const Args&) { return truthy(get_attr(Value(to_str(v)), "isupper").function().call({})); }

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"defined", t_defined},
      {"undefined", t_undefined},
      {"none", t_none},
      {"boolean", t_boolean},
      {"true", t_true},
      {"false", t_false},
      {"integer", t_integer},
      {"float", t_float},
      {"number", t_number},
      {"string", t_string},
      {"mapping", t_mapping},
      {"iterable", t_iterable},
      {"sequence", t_sequence},
      {"callable", t_callable},
      {"escaped", t_escaped},
      {"sameas", t_sameas},
      {"eq", t_eq},
      {"equalto", t_eq},
      {"==", t_eq},
      {"ne", t_ne},
      {"!=", t_ne},
      {"lt", t_lt},
      {"lessthan", t_lt},
      {"<", t_lt},
      {"le", t_le},
      {"<=", t_le},
      {"gt", t_gt},
      {"greaterthan", t_gt},
      {">", t_gt},
      {"ge", t_ge},
      {">=", t_ge},
      {"in", t_in},
      {"even", t_even},
      {"odd", t_odd},
      {"divisibleby", t_divisibleby},
      {"lower", t_lower},
      {"upper", t_upper},
  };
  return table;
}

}  // namespace

TestFn find_test(std::string_view name) {
  auto it = tests().find(name);
  return it == tests().end() ? nullptr : it->second;
}

void check_test_arguments(std::string_view name, const Args& args) {
  static const std::string_view kOneArgument[] = {
      "sameas", "eq", "equalto", "==",          "ne", "!=", "lt", "lessthan", "<",
      "le",     "<=", "gt",      "greaterthan", ">",  "ge", ">=", "in",       "divisibleby"};
  const size_t takes = std::find(std::begin(kOneArgument), std::end(kOneArgument), name) != std::end(kOneArgument);
  const size_t given = args.positional.size() + args.keyword.size();
  if (given > takes)
    throw Failure("the test '" + std::string(name) + "' takes " + std::to_string(takes) + " argument(s), " +
                  std::to_string(given) + " given");
}

}  // namespace afq::jinja
