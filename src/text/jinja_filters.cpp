// jinja2's builtin filters (jinja2/filters.py) as chat templates use them; tojson is
// transformers' (jinja_json.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>
#include <utility>

#include "jinja_builtins.h"

namespace afq::jinja {

namespace {

const Value kNone{None{}};

// By value: the fallback is often a temporary.
Value arg(const Args& a, size_t index, std::string_view name, const Value& fallback) {
  const Value* v = a.get(index, name);
  return v ? *v : fallback;
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Value lookup_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = get_item(v, digits ? Value(static_cast<int64_t>(std::strtoll(part.c_str(), nullptr, 10))) : Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// Sort and unique keys: strings lowercased unless case_sensitive (jinja2's ignore_case).
Value sort_key(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(py_lower(v.str())) : v;
}

std::vector<std::string> attribute_paths(const Value& attribute) {
  std::vector<std::string> paths;
  if (attribute.is_none() || attribute.is_undefined()) return paths;
  if (attribute.is_integral()) return {std::to_string(attribute.integer())};
  const std::string& s = attribute.str();
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    paths.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return paths;
    start = comma + 1;
  }
}

Value key_of(const Value& item, const std::vector<std::string>& paths, bool case_sensitive) {
  if (paths.empty()) return sort_key(item, case_sensitive);
  if (paths.size() == 1) return sort_key(lookup_path(item, paths[0]), case_sensitive);
  std::vector<Value> keys;
  for (const auto& p : paths) keys.push_back(sort_key(lookup_path(item, p), case_sensitive));
  return Value::list(std::move(keys));
}

Value f_abs(const Value& v, const Args&) {
  if (v.is_integral()) return std::abs(v.integer());
  if (v.is_number()) return std::fabs(v.number());
  throw Failure("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_attr(const Value& v, const Args& a) {
  const Value& name = arg(a, 0, "name", kNone);
  if (!name.is_string()) throw Failure("attribute name must be string");
  if (v.is_dict()) {  // attributes only, not keys
    Value method = get_attr(Value::dict({}), name.str());
    return method.is_undefined() ? method : get_attr(v, name.str());
  }
  return get_attr(v, name.str());
}

Value f_batch(const Value& v, const Args& a) {
  const Value count = arg(a, 0, "linecount", kNone);
  if (!count.is_integral() || count.integer() <= 0) throw Failure("batch needs a positive linecount");
  const Value* fill = a.get(1, "fill_with");
  std::vector<Value> rows, row;
  for (const Value& item : iterate(v)) {
    row.push_back(item);
    if (static_cast<int64_t>(row.size()) == count.integer()) rows.push_back(Value::list(std::exchange(row, {})));
  }
  if (!row.empty()) {
    if (fill && !fill->is_none())
      while (static_cast<int64_t>(row.size()) < count.integer()) row.push_back(*fill);
    rows.push_back(Value::list(std::move(row)));
  }
  return Value::list(std::move(rows));
}

Value f_center(const Value& v, const Args& a) {
  const std::string s = to_str(v);
  const int64_t width = arg(a, 0, "width", Value(80)).integer();
  const int64_t margin = width - static_cast<int64_t>(code_point_count(s));
  if (margin <= 0) return s;
  const int64_t left = margin / 2 + (margin & width & 1);  // CPython's str.center
  return std::string(left, ' ') + s + std::string(margin - left, ' ');
}

Value f_capitalize(const Value& v, const Args&) { return py_capitalize(to_str(v)); }

Value f_length(const Value& v, const Args&) { return length(v); }

Value f_default(const Value& v, const Args& a) {
  static const Value kEmpty{""};
  const Value& fallback = arg(a, 0, "default_value", kEmpty);
  if (v.is_undefined() || (truthy(arg(a, 1, "boolean", Value(false))) && !truthy(v))) return fallback;
  return v;
}

Value f_dictsort(const Value& v, const Args& a) {
  if (!v.is_dict()) throw Failure("dictsort expects a mapping, got " + type_name(v));
  const bool case_sensitive = truthy(arg(a, 0, "case_sensitive", Value(false)));
  const Value& by = arg(a, 1, "by", Value("key"));
  const bool reverse = truthy(arg(a, 2, "reverse", Value(false)));
  if (!by.is_string() || (by.str() != "key" && by.str() != "value"))
    throw Failure("You can only sort by either \"key\" or \"value\"");
  const size_t pos = by.str() == "key" ? 0 : 1;
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.dict().entries) pairs.push_back(Value::list({Value(k), val}, true));
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    const int c = compare(sort_key(x.items()[pos], case_sensitive), sort_key(y.items()[pos], case_sensitive));
    return reverse ? c > 0 : c < 0;
  });
  return Value::list(std::move(pairs));
}

Value f_escape(const Value& v, const Args&) {
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Value f_first(const Value& v, const Args&) {
  if (v.is_list()) return v.items().empty() ? Value::undefined("No first item, sequence was empty.") : v.items()[0];
  std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items[0];
}

Value f_last(const Value& v, const Args&) {
  if (v.is_list()) return v.items().empty() ? Value::undefined("No last item, sequence was empty.") : v.items().back();
  std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

// Python's float() of a str: surrounding whitespace and underscores between digits allowed.
bool parse_float(std::string s, double* out) {
  s = py_strip(s, kNone, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return false;
      continue;
    }
    clean += s[i];
  }
  if (clean.empty() || clean.find_first_of("xXpP") != std::string::npos) return false;
  const std::string lower = py_lower(clean);
  const std::string_view body = lower[0] == '+' || lower[0] == '-' ? std::string_view(lower).substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    *out = body == "nan" ? NAN : (lower[0] == '-' ? -INFINITY : INFINITY);
    return true;
  }
  char* end = nullptr;
  *out = std::strtod(clean.c_str(), &end);
  return end == clean.c_str() + clean.size();
}

// Python's int(str, base).
bool parse_int(const std::string& text, int base, int64_t* out) {
  std::string s = py_strip(text, kNone, true, true);
  bool negative = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(std::tolower(s[i + 1]));
    if ((p == 'x' && base == 16) || (p == 'o' && base == 8) || (p == 'b' && base == 2)) i += 2;
  }
  int64_t v = 0;
  bool any = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && any && i + 1 < s.size()) continue;
    const char c = static_cast<char>(std::tolower(s[i]));
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
    if (d >= base) return false;
    v = v * base + d;
    any = true;
  }
  if (!any) return false;
  *out = negative ? -v : v;
  return true;
}

Value f_float(const Value& v, const Args& a) {
  const Value& fallback = arg(a, 0, "default", Value(0.0));
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number()) return v.number();
  double d;
  if (v.is_string() && parse_float(v.str(), &d)) return d;
  return fallback;
}

Value f_int(const Value& v, const Args& a) {
  const Value& fallback = arg(a, 0, "default", Value(0));
  const Value& base = arg(a, 1, "base", Value(10));
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_integral()) return v.integer();
  if (v.kind() == Value::Kind::kFloat) {
    if (!std::isfinite(v.number())) throw Failure("cannot convert float infinity or NaN to integer");
    return static_cast<int64_t>(std::trunc(v.number()));
  }
  if (v.is_string()) {
    int64_t i;
    if (parse_int(v.str(), base.is_integral() ? static_cast<int>(base.integer()) : 10, &i)) return i;
    double d;  // "42.23"|int is 42
    if (parse_float(v.str(), &d) && std::isfinite(d)) return static_cast<int64_t>(std::trunc(d));
  }
  return fallback;
}

Value f_items(const Value& v, const Args&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) throw Failure("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.dict().entries) pairs.push_back(Value::list({Value(k), val}, true));
  return Value::list(std::move(pairs));
}

Value f_indent(const Value& v, const Args& a) {
  const Value& width = arg(a, 0, "width", Value(4));
  const bool first = truthy(arg(a, 1, "first", Value(false)));
  const bool blank = truthy(arg(a, 2, "blank", Value(false)));
  const std::string indention =
      width.is_string() ? width.str() : std::string(std::max<int64_t>(0, width.integer()), ' ');
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_string()) throw Failure("indent expects a string, got " + type_name(v));
  // Python's splitlines() of s + "\n".
  const std::string s = v.str() + "\n";
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f') {
      lines.push_back(s.substr(start, i - start));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : indention + lines[i]);
  }
  return first ? indention + rv : rv;
}

Value f_join(const Value& v, const Args& a) {
  static const Value kEmpty{""};
  const std::string sep = to_str(arg(a, 0, "d", kEmpty));
  const std::vector<std::string> paths = attribute_paths(arg(a, 1, "attribute", kNone));
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    out += (first ? "" : sep) + to_str(paths.empty() ? item : lookup_path(item, paths[0]));
    first = false;
  }
  return out;
}

Value f_list(const Value& v, const Args&) { return Value::list(iterate(v)); }
Value f_lower(const Value& v, const Args&) { return py_lower(to_str(v)); }
Value f_upper(const Value& v, const Args&) { return py_upper(to_str(v)); }
Value f_safe(const Value& v, const Args&) { return to_str(v); }
Value f_string(const Value& v, const Args&) { return to_str(v); }

Value f_map(const Value& v, const Args& a) {
  std::vector<Value> out;
  if (!truthy(v)) return Value::list({});  // jinja2 maps nothing over a falsy value, even a number
  const Value* attribute = a.get(99, "attribute");
  if (attribute) {
    const Value& fallback = arg(a, 99, "default", Value());
    const std::vector<std::string> paths = attribute_paths(*attribute);
    for (const Value& item : iterate(v)) {
      Value got = lookup_path(item, paths.at(0));
      out.push_back(got.is_undefined() && a.get(99, "default") ? fallback : got);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string()) throw Failure("map requires a filter argument");
  FilterFn filter = find_filter(a.positional[0].str());
  if (!filter) throw Failure("No filter named '" + a.positional[0].str() + "'.");
  Args rest{{a.positional.begin() + 1, a.positional.end()}, a.keyword};
  for (const Value& item : iterate(v)) out.push_back(filter(item, rest));
  return Value::list(std::move(out));
}

Value min_max(const Value& v, const Args& a, bool max) {
  const bool case_sensitive = truthy(arg(a, 0, "case_sensitive", Value(false)));
  const std::vector<std::string> paths = attribute_paths(arg(a, 1, "attribute", kNone));
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    const int c = compare(key_of(items[i], paths, case_sensitive), key_of(items[best], paths, case_sensitive));
    if (max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}

Value f_max(const Value& v, const Args& a) { return min_max(v, a, true); }
Value f_min(const Value& v, const Args& a) { return min_max(v, a, false); }

Value f_replace(const Value& v, const Args& a) {
  if (a.positional.size() < 2) throw Failure("replace() needs old and new");
  Args call{{a.positional[0], a.positional[1]}, {}};
  if (const Value* count = a.get(2, "count"); count && !count->is_none()) call.positional.push_back(*count);
  return get_attr(Value(to_str(v)), "replace").function().call(call);
}

Value f_reverse(const Value& v, const Args&) {
  if (v.is_string()) {
    std::vector<std::string> cps = code_points(v.str());
    std::string out;
    for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
    return out;
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

// Python's round(x, n): correctly rounded from the exact binary value, ties to even.
Value f_round(const Value& v, const Args& a) {
  const int64_t precision = arg(a, 0, "precision", Value(0)).integer();
  const Value& method = arg(a, 1, "method", Value("common"));
  if (!v.is_number()) throw Failure("type " + type_name(v) + " doesn't define __round__ method");
  const double x = v.number();
  if (!method.is_string() || (method.str() != "common" && method.str() != "ceil" && method.str() != "floor"))
    throw Failure("method must be common, ceil or floor");
  if (method.str() != "common") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    return (method.str() == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale;
  }
  if (v.is_integral()) return v.integer();  // Python's round() keeps an int an int
  if (!std::isfinite(x)) return x;
  if (precision >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(std::min<int64_t>(precision, 300)), x);
    return std::strtod(buf, nullptr);
  }
  const double scale = std::pow(10.0, static_cast<double>(-precision));
  return std::nearbyint(x / scale) * scale;
}

Value select_or_reject(const Value& v, const Args& a, bool by_attribute, bool select) {
  size_t next = 0;
  std::string path;
  if (by_attribute) {
    if (a.positional.empty() || !a.positional[0].is_string()) throw Failure("Missing parameter for attribute name");
    path = a.positional[next++].str();
  }
  TestFn test = nullptr;
  Args test_args;
  if (next < a.positional.size()) {
    if (!a.positional[next].is_string()) throw Failure("test name must be a string");
    test = find_test(a.positional[next].str());
    if (!test) throw Failure("No test named '" + a.positional[next].str() + "'.");
    test_args.positional.assign(a.positional.begin() + next + 1, a.positional.end());
    test_args.keyword = a.keyword;
    check_test_arguments(a.positional[next].str(), test_args);
  }
  std::vector<Value> out;
  if (!truthy(v)) return Value::list({});  // as map: a falsy value selects nothing
  for (const Value& item : iterate(v)) {
    const Value subject = by_attribute ? lookup_path(item, path) : item;
    const bool ok = test ? test(subject, test_args) : truthy(subject);
    if (ok == select) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(const Value& v, const Args& a) { return select_or_reject(v, a, false, true); }
Value f_reject(const Value& v, const Args& a) { return select_or_reject(v, a, false, false); }
Value f_selectattr(const Value& v, const Args& a) { return select_or_reject(v, a, true, true); }
Value f_rejectattr(const Value& v, const Args& a) { return select_or_reject(v, a, true, false); }

Value f_sort(const Value& v, const Args& a) {
  const bool reverse = truthy(arg(a, 0, "reverse", Value(false)));
  const bool case_sensitive = truthy(arg(a, 1, "case_sensitive", Value(false)));
  const std::vector<std::string> paths = attribute_paths(arg(a, 2, "attribute", kNone));
  std::vector<Value> items = iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(key_of(items[i], paths, case_sensitive), i);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? compare(y.first, x.first) < 0 : compare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (const auto& [key, i] : keyed) out.push_back(items[i]);
  return Value::list(std::move(out));
}

Value f_sum(const Value& v, const Args& a) {
  const std::vector<std::string> paths = attribute_paths(arg(a, 0, "attribute", kNone));
  Value total = arg(a, 1, "start", Value(0));
  for (const Value& item : iterate(v))
    total = binary_op("+", total, paths.empty() ? item : lookup_path(item, paths[0]));
  return total;
}

// jinja2's title: a word starts after "-", whitespace or an opening bracket.
Value f_title(const Value& v, const Args&) {
  std::string out;
  bool word_start = true;
  for (const std::string& cp : code_points(to_str(v))) {
    const bool sep = is_space(cp) || cp == "-" || cp == "(" || cp == "{" || cp == "[" || cp == "<";
    out += sep ? cp : word_start ? py_upper(cp) : py_lower(cp);
    word_start = sep;
  }
  return out;
}

Value f_tojson(const Value& v, const Args& a) {
  return to_json(v, truthy(arg(a, 0, "ensure_ascii", Value(false))), arg(a, 1, "indent", kNone),
                 arg(a, 2, "separators", kNone), truthy(arg(a, 3, "sort_keys", Value(false))));
}

Value f_trim(const Value& v, const Args& a) { return py_strip(to_str(v), arg(a, 0, "chars", kNone), true, true); }

Value f_unique(const Value& v, const Args& a) {
  const bool case_sensitive = truthy(arg(a, 0, "case_sensitive", Value(false)));
  const std::vector<std::string> paths = attribute_paths(arg(a, 1, "attribute", kNone));
  std::vector<Value> seen, out;
  for (const Value& item : iterate(v)) {
    Value key = key_of(item, paths, case_sensitive);
    if (key.is_dict() || (key.is_list() && !key.is_tuple())) throw Failure("unhashable type: '" + type_name(key) + "'");
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value f_format(const Value& v, const Args& a) {
  if (!a.keyword.empty()) throw Failure("format with keyword arguments is not supported");
  return binary_op("%", Value(to_str(v)), Value::list(a.positional, true));
}

Value f_wordcount(const Value& v, const Args&) {
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : to_str(v)) {
    const bool word = std::isalnum(c) || c == '_' || c >= 0x80;
    n += word && !in_word;
    in_word = word;
  }
  return n;
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"center", f_center},
      {"capitalize", f_capitalize},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_escape},
      {"format", f_format},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return table;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  auto it = filters().find(name);
  if (it != filters().end()) return it->second;
  for (const char* jinja_only : {"filesizeformat", "groupby", "pprint", "slice", "striptags", "truncate", "urlencode",
                                 "urlize", "wordwrap", "xmlattr"})
    if (name == jinja_only)
      throw Failure("the filter '" + std::string(name) + "' is not supported by afq's chat templates");
  return nullptr;
}

}  // namespace afq::jinja
