#include "jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace afq::jinja {

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(std::string key, Value value) {
  for (auto& [k, v] : entries)
    if (k == key) {
      v = std::move(value);
      return;
    }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* Args::get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  Value v;
  v.v_ = std::make_shared<const Seq>(Seq{std::move(items), tuple});
  return v;
}

Value Value::dict_view(const char* name, std::vector<Value> items) {
  Value v;
  v.v_ = std::make_shared<const Seq>(Seq{std::move(items), false, name});
  return v;
}

Value Value::dict(Dict dict) {
  Value v;
  v.v_ = std::make_shared<const Dict>(std::move(dict));
  return v;
}

Value Value::ns(Dict attrs) {
  Value v;
  v.v_ = std::make_shared<Namespace>(Namespace{std::move(attrs)});
  return v;
}

Value Value::function(std::string name, std::function<Value(const Args&)> call) {
  Value v;
  v.v_ = std::make_shared<const Function>(Function{std::move(name), std::move(call)});
  return v;
}

namespace {
template <typename T>
const void* pointer_of(const std::shared_ptr<T>& p) {
  return p.get();
}
template <typename T>
const void* pointer_of(const T&) {
  return nullptr;
}
}  // namespace

bool Value::same_object(const Value& other) const {
  if (v_.index() != other.v_.index()) return false;
  switch (kind()) {
    case Kind::kList:
    case Kind::kDict:
    case Kind::kNamespace:
    case Kind::kFunction:  // the same object: the same pointer
      return std::visit([](const auto& x, const auto& y) { return pointer_of(x) == pointer_of(y); }, v_, other.v_);
    default:
      return equal(*this, other);
  }
}

int64_t Value::integer() const {
  if (kind() == Kind::kBool) return boolean() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double Value::number() const {
  if (kind() == Kind::kFloat) return std::get<double>(v_);
  return static_cast<double>(integer());
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.view() ? v.view() : v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kFunction:
      return "function";
  }
  return "object";
}

void fail_undefined(const Value& v) {
  throw Failure(v.undefined_hint().empty() ? std::string("value is undefined") : v.undefined_hint());
}

// ---- str() and repr() ----

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // The shortest digits that round-trip, placed as Python's repr places them: positional when
  // the decimal exponent is in [-4, 16), else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, res.ptr - buf);
  std::string out;
  if (sci.front() == '-') {
    out = "-";
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  const int exponent = std::stoi(std::string(sci.substr(e + 1)));
  const int decpt = exponent + 1;  // digits before the decimal point
  const int ndigits = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return out + "0." + std::string(-decpt, '0') + digits;
    if (decpt >= ndigits) return out + digits + std::string(decpt - ndigits, '0') + ".0";
    return out + digits.substr(0, decpt) + "." + digits.substr(decpt);
  }
  out += digits.substr(0, 1);
  if (ndigits > 1) out += "." + digits.substr(1);
  char exp[16];
  std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp;
}

namespace {

std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (const std::string& cp : code_points(s)) {
    if (cp.size() == 1 && (cp[0] == quote || cp[0] == '\\')) {
      out += '\\';
      out += cp;
    } else if (cp == "\n") {
      out += "\\n";
    } else if (cp == "\r") {
      out += "\\r";
    } else if (cp == "\t") {
      out += "\\t";
    } else if (!is_printable(cp)) {
      const uint32_t v = decode_utf8(cp);
      char buf[16];
      if (v <= 0xFF)
        std::snprintf(buf, sizeof(buf), "\\x%02x", v);
      else
        std::snprintf(buf, sizeof(buf), "\\u%04x", v);
      out += buf;
    } else {
      out += cp;
    }
  }
  return out + quote;
}

}  // namespace

std::string repr(const Value& v) {
  if (v.is_undefined()) return "Undefined";
  if (v.is_string()) return repr_string(v.str());
  return to_str(v);
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.boolean() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.integer());
    case Value::Kind::kFloat:
      return float_repr(v.number());
    case Value::Kind::kString:
      return v.str();
    case Value::Kind::kList: {
      if (v.view()) return v.view() + ("(" + to_str(Value::list(v.items())) + ")");
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < v.items().size(); ++i) out += (i ? ", " : "") + repr(v.items()[i]);
      if (v.is_tuple() && v.items().size() == 1) out += ",";
      return out + (v.is_tuple() ? ")" : "]");
    }
    case Value::Kind::kDict: {
      std::string out = "{";
      for (size_t i = 0; i < v.dict().entries.size(); ++i)
        out += (i ? ", " : "") + repr_string(v.dict().entries[i].first) + ": " + repr(v.dict().entries[i].second);
      return out + "}";
    }
    case Value::Kind::kNamespace:
      return "<Namespace " + to_str(Value::dict(v.ns().attrs)) + ">";
    case Value::Kind::kFunction:
      return "<function " + v.function().name + ">";
  }
  return "";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.boolean();
    case Value::Kind::kInt:
      return v.integer() != 0;
    case Value::Kind::kFloat:
      return v.number() != 0.0;
    case Value::Kind::kString:
      return !v.str().empty();
    case Value::Kind::kList:
      return !v.items().empty();
    case Value::Kind::kDict:
      return !v.dict().entries.empty();
    default:
      return true;
  }
}

// ---- comparisons ----

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat) return a.number() == b.number();
    return a.integer() == b.integer();
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_view() || b.is_view()) return a.same_object(b);
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!equal(a.items()[i], b.items()[i])) return false;
      return true;
    }
    case Value::Kind::kDict: {
      if (a.dict().entries.size() != b.dict().entries.size()) return false;
      for (const auto& [k, v] : a.dict().entries) {
        const Value* other = b.dict().find(k);
        if (!other || !equal(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.ns() == &b.ns();
    case Value::Kind::kFunction:
      return &a.function() == &b.function();
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat)
      return a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
    return a.integer() < b.integer() ? -1 : a.integer() > b.integer() ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && !a.is_view() && !b.is_view()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equal(x[i], y[i])) return compare(x[i], y[i]);
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw Failure("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

// ---- arithmetic ----

namespace {

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  throw Failure("unsupported operand type(s) for " + std::string(op) + ": '" + type_name(a) + "' and '" + type_name(b) +
                "'");
}

std::string repeat(const std::string& s, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += s;
  return out;
}

// Python's float divmod: the remainder takes the divisor's sign.
std::pair<double, double> float_divmod(double x, double y) {
  if (y == 0.0) throw Failure("float division by zero");
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, x / y);
  }
  return {floordiv, mod};
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Python's printf-style `str % args`: flags, width and precision with the conversions
// s r d i f e g x o c and %%.
std::string percent_format(const std::string& format, const Value& args) {
  std::vector<Value> values = args.is_list() && args.is_tuple() ? args.items() : std::vector<Value>{args};
  size_t next = 0;
  std::string out;
  auto digits = [&](size_t& i) {
    std::string d;
    while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) d += format[i++];
    return d;
  };
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    std::string flags;
    while (++i < format.size() && std::string_view("-+ 0#").find(format[i]) != std::string_view::npos)
      flags += format[i];
    const std::string width = digits(i);
    std::string precision;
    const bool has_precision = i < format.size() && format[i] == '.';
    if (has_precision) precision = digits(++i);
    if (i >= format.size()) throw Failure("incomplete format");
    const char conv = format[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) throw Failure("not enough arguments for format string");
    const Value& v = values[next++];
    const std::string spec = "%" + flags + width + (has_precision ? "." + precision : "");
    char buf[512];
    if (conv == 's' || conv == 'r') {
      // Width and precision count code points, not bytes.
      std::vector<std::string> cps = code_points(conv == 's' ? to_str(v) : repr(v));
      if (has_precision) cps.resize(std::min(cps.size(), std::strtoul(precision.c_str(), nullptr, 10)));
      std::string text;
      for (const std::string& cp : cps) text += cp;
      const size_t w = std::strtoul(width.c_str(), nullptr, 10);
      if (w > cps.size()) {
        const std::string pad(w - cps.size(), ' ');
        text = flags.find('-') != std::string::npos ? text + pad : pad + text;
      }
      out += text;
    } else if (std::string_view("dixXoc").find(conv) != std::string_view::npos) {
      if (!v.is_number())
        throw Failure("%" + std::string(1, conv) + " format: a real number is required, not " + type_name(v));
      const long long n = v.kind() == Value::Kind::kFloat ? static_cast<long long>(v.number()) : v.integer();
      if (conv == 'c') {
        append_utf8(out, static_cast<uint32_t>(n));
        continue;
      }
      std::snprintf(buf, sizeof(buf), (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), n);
      out += buf;
    } else if (std::string_view("feEgG").find(conv) != std::string_view::npos) {
      if (!v.is_number()) throw Failure("must be real number, not " + type_name(v));
      std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), v.number());
      out += buf;
    } else {
      throw Failure("unsupported format character '" + std::string(1, conv) + "'");
    }
  }
  // A dict or list argument may go unused: Python takes it for a mapping.
  if (next < values.size() && !args.is_dict() && !args.is_undefined() &&
      !(args.is_list() && !args.is_tuple() && !args.is_view()))
    throw Failure("not all arguments converted during string formatting");
  return out;
}

// 64-bit arithmetic that refuses to wrap (Python's ints do not).
[[noreturn]] void overflow() { throw Failure("integer overflow: afq's chat templates compute with 64-bit integers"); }
int64_t add_checked(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t sub_checked(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
int64_t mul_checked(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}

}  // namespace

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "%" && a.is_string()) return percent_format(a.str(), b);  // undefined args print as ""
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_view() || b.is_view()) unsupported(op, a, b);
  const bool numbers = a.is_number() && b.is_number();
  const bool ints = a.is_integral() && b.is_integral();
  if (op == "+") {
    if (ints) return add_checked(a.integer(), b.integer());
    if (numbers) return a.number() + b.number();
    if (a.is_string() && b.is_string()) return a.str() + b.str();
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return Value::list(std::move(items), a.is_tuple());
    }
    if (a.is_string()) throw Failure("can only concatenate str (not \"" + type_name(b) + "\") to str");
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) return sub_checked(a.integer(), b.integer());
    if (numbers) return a.number() - b.number();
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) return mul_checked(a.integer(), b.integer());
    if (numbers) return a.number() * b.number();
    const Value* seq = a.is_integral() ? &b : &a;
    const Value* count = a.is_integral() ? &a : &b;
    const size_t unit = seq->is_string() ? seq->str().size() : seq->is_list() ? seq->items().size() : 0;
    if (count->is_integral() && count->integer() > 0 && unit * static_cast<double>(count->integer()) > (1u << 28))
      throw Failure("repetition too large: more than 2^28 bytes or items");
    if (count->is_integral() && seq->is_string()) return repeat(seq->str(), count->integer());
    if (count->is_integral() && seq->is_list()) {
      std::vector<Value> items;
      for (int64_t i = 0; i < count->integer(); ++i)
        items.insert(items.end(), seq->items().begin(), seq->items().end());
      return Value::list(std::move(items), seq->is_tuple());
    }
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!numbers) unsupported(op, a, b);
    if (b.number() == 0.0) throw Failure("division by zero");
    return a.number() / b.number();
  }
  if (op == "//" || op == "%") {
    if (!numbers) unsupported(op, a, b);
    if (ints) {
      if (b.integer() == 0) throw Failure("integer division or modulo by zero");
      if (b.integer() == -1) return op == "//" ? Value(sub_checked(0, a.integer())) : Value(0);
      const int64_t q = floor_div(a.integer(), b.integer());
      return op == "//" ? q : a.integer() - q * b.integer();
    }
    auto [q, r] = float_divmod(a.number(), b.number());
    return op == "//" ? q : r;
  }
  if (op == "**") {
    if (!numbers) unsupported(op, a, b);
    if (ints && b.integer() >= 0) {
      int64_t result = 1;
      for (int64_t i = 0; i < b.integer() && result != 0; ++i) result = mul_checked(result, a.integer());
      return result;
    }
    if (a.number() == 0.0 && b.number() < 0) throw Failure("0.0 cannot be raised to a negative power");
    return std::pow(a.number(), b.number());
  }
  throw Failure("unknown operator " + std::string(op));
}

Value negate(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_integral()) return sub_checked(0, v.integer());
  if (v.is_number()) return -v.number();
  throw Failure("bad operand type for unary -: '" + type_name(v) + "'");
}

bool contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::kString:
      if (!needle.is_string()) throw Failure("'in <string>' requires string as left operand, not " + type_name(needle));
      return haystack.str().find(needle.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& item : haystack.items())
        if (equal(item, needle)) return true;
      return false;
    case Value::Kind::kDict:
      if (needle.is_dict() || (needle.is_list() && !needle.is_tuple()))
        throw Failure("unhashable type: '" + type_name(needle) + "'");
      return needle.is_string() && haystack.dict().find(needle.str());
    case Value::Kind::kUndefined:
      return false;
    default:
      throw Failure("argument of type '" + type_name(haystack) + "' is not iterable");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& [k, unused] : v.dict().entries) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      for (std::string& cp : code_points(v.str())) chars.emplace_back(std::move(cp));
      return chars;
    }
    default:
      throw Failure("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(code_point_count(v.str()));
    case Value::Kind::kList:
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().entries.size());
    default:
      throw Failure("object of type '" + type_name(v) + "' has no len()");
  }
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return None{};
    case nlohmann::ordered_json::value_t::boolean:
      return j.get<bool>();
    case nlohmann::ordered_json::value_t::number_integer:
      return j.get<int64_t>();
    case nlohmann::ordered_json::value_t::number_unsigned:
      return static_cast<int64_t>(j.get<uint64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return j.get<double>();
    case nlohmann::ordered_json::value_t::string:
      return j.get<std::string>();
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      for (const auto& item : j) items.push_back(from_json(item));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (const auto& [k, v] : j.items()) d.entries.emplace_back(k, from_json(v));
      return Value::dict(std::move(d));
    }
    default:
      return Value::undefined("unsupported JSON value");
  }
}

}  // namespace afq::jinja
