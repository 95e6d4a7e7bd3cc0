// Attribute and item access as jinja2's sandbox does it (obj.name falls back to obj["name"], and
// the other way round), the str and dict methods templates call, and the globals.
#include <algorithm>
#include <chrono>
#include <ctime>

#include "jinja_builtins.h"

namespace afq::jinja {

namespace {

const std::string& str_arg(const Value& v, const char* what) {
  if (!v.is_string()) throw Failure(std::string(what) + " must be str, not " + type_name(v));
  return v.str();
}

int64_t int_arg(const Value* v, int64_t fallback) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_integral()) throw Failure("'" + type_name(*v) + "' object cannot be interpreted as an integer");
  return v->integer();
}

// Python's str.split / str.rsplit.
Value split(const std::string& s, const Value* sep, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (!sep || sep->is_none()) {
    std::vector<std::string> cps = code_points(s);
    if (from_right) std::reverse(cps.begin(), cps.end());
    std::string word;
    bool in_word = false;
    size_t i = 0;
    for (; i < cps.size(); ++i) {
      if (is_space(cps[i])) {
        if (in_word) {
          parts.push_back(word);
          word.clear();
          in_word = false;
        }
        continue;
      }
      if (!in_word && maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) break;
      in_word = true;
      word += from_right ? std::string(cps[i].rbegin(), cps[i].rend()) : cps[i];
    }
    if (in_word) parts.push_back(word);
    if (i < cps.size()) {  // the rest after maxsplit splits, its trailing (or leading) spaces kept
      std::string rest;
      for (; i < cps.size(); ++i) rest += from_right ? std::string(cps[i].rbegin(), cps[i].rend()) : cps[i];
      parts.push_back(rest);
    }
    if (from_right) {
      for (std::string& p : parts) std::reverse(p.begin(), p.end());
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    const std::string& delim = str_arg(*sep, "separator");
    if (delim.empty()) throw Failure("empty separator");
    if (!from_right) {
      size_t start = 0;
      for (size_t pos; (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) &&
                       (pos = s.find(delim, start)) != std::string::npos;
           start = pos + delim.size())
        parts.push_back(s.substr(start, pos - start));
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < delim.size()) break;
        const size_t pos = s.rfind(delim, end - delim.size());
        if (pos == std::string::npos) break;
        rev.push_back(s.substr(pos + delim.size(), end - pos - delim.size()));
        end = pos;
      }
      rev.push_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
  }
  std::vector<Value> out(parts.begin(), parts.end());
  return Value::list(std::move(out));
}

bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    const std::string& t = str_arg(a, prefix ? "startswith first arg" : "endswith first arg");
    return t.size() <= s.size() &&
           (prefix ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0);
  };
  if (affix.is_list() && affix.is_tuple()) return std::any_of(affix.items().begin(), affix.items().end(), one);
  return one(affix);
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& with, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `with` around every character
    int64_t done = 0;
    for (const std::string& cp : code_points(s)) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      out += cp;
    }
    if (count < 0 || done < count) out += with;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  for (size_t pos; (count < 0 || done < count) && (pos = s.find(old, start)) != std::string::npos; ++done) {
    out += s.substr(start, pos - start) + with;
    start = pos + old.size();
  }
  return out + s.substr(start);
}

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python's str.format for {}, {0}, {name}, {{ and }} (no format specs).
std::string py_format(const std::string& fmt, const Args& args) {
  std::string out;
  size_t auto_index = 0;
  bool manual = false, automatic = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}')
        ++i;
      else
        throw Failure("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) throw Failure("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    if (field.find_first_of(":!") != std::string::npos) throw Failure("format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      if (manual) throw Failure("cannot switch from manual field specification to automatic field numbering");
      automatic = true;
      v = auto_index < args.positional.size() ? &args.positional[auto_index] : nullptr;
      if (!v)
        throw Failure("Replacement index " + std::to_string(auto_index) + " out of range for positional args tuple");
      ++auto_index;
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      if (automatic) throw Failure("cannot switch from automatic field numbering to manual field specification");
      manual = true;
      const size_t index = std::strtoul(field.c_str(), nullptr, 10);
      if (index >= args.positional.size())
        throw Failure("Replacement index " + field + " out of range for positional args tuple");
      v = &args.positional[index];
    } else {
      for (const auto& [k, kv] : args.keyword)
        if (k == field) v = &kv;
      if (!v) throw Failure("'" + field + "'");
    }
    out += to_str(*v);
  }
  return out;
}

Value bound(const std::string& name, std::function<Value(const Args&)> fn) {
  return Value::function(name, std::move(fn));
}

Value str_method(const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bound(name, [s, name](const Args& a) {
      const Value* chars = a.get(0, "chars");
      return Value(py_strip(s, chars ? *chars : Value(None{}), name != "rstrip", name != "lstrip"));
    });
  if (name == "split" || name == "rsplit")
    return bound(name, [s, name](const Args& a) {
      return split(s, a.get(0, "sep"), int_arg(a.get(1, "maxsplit"), -1), name == "rsplit");
    });
  if (name == "startswith" || name == "endswith")
    return bound(name, [s, name](const Args& a) {
      if (a.positional.empty()) throw Failure(name + "() takes at least 1 argument (0 given)");
      return Value(affix_matches(s, a.positional[0], name == "startswith"));
    });
  if (name == "upper") return bound(name, [s](const Args&) { return Value(py_upper(s)); });
  if (name == "lower") return bound(name, [s](const Args&) { return Value(py_lower(s)); });
  if (name == "title") return bound(name, [s](const Args&) { return Value(py_title(s)); });
  if (name == "capitalize") return bound(name, [s](const Args&) { return Value(py_capitalize(s)); });
  if (name == "replace")
    return bound(name, [s](const Args& a) {
      if (a.positional.size() < 2) throw Failure("replace() takes at least 2 arguments");
      return Value(replace_all(s, str_arg(a.positional[0], "replace() argument 1"),
                               str_arg(a.positional[1], "replace() argument 2"), int_arg(a.get(2, "count"), -1)));
    });
  if (name == "find" || name == "count" || name == "index")
    return bound(name, [s, name](const Args& a) -> Value {
      if (a.positional.empty()) throw Failure(name + "() takes at least 1 argument (0 given)");
      const std::string& sub = str_arg(a.positional[0], "must be str");
      if (name == "count") {
        if (sub.empty()) return static_cast<int64_t>(code_point_count(s) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return n;
      }
      const size_t p = s.find(sub);
      if (p == std::string::npos) {
        if (name == "index") throw Failure("substring not found");
        return -1;
      }
      return static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, p)));
    });
  if (name == "join")
    return bound(name, [s](const Args& a) {
      if (a.positional.empty()) throw Failure("join() takes exactly one argument (0 given)");
      std::string out;
      bool first = true;
      for (const Value& item : iterate(a.positional[0])) {
        if (!item.is_string()) throw Failure("sequence item: expected str instance, " + type_name(item) + " found");
        out += (first ? "" : s) + item.str();
        first = false;
      }
      return Value(out);
    });
  if (name == "format") return bound(name, [s](const Args& a) { return Value(py_format(s, a)); });
  if (name == "splitlines")
    return bound(name, [s](const Args&) {
      std::vector<Value> lines;
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i)
        if (s[i] == '\n' || s[i] == '\r') {
          lines.emplace_back(s.substr(start, i - start));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          start = i + 1;
        }
      if (start < s.size()) lines.emplace_back(s.substr(start));
      return Value::list(std::move(lines));
    });
  if (name == "removeprefix" || name == "removesuffix")
    return bound(name, [s, name](const Args& a) {
      if (a.positional.empty()) throw Failure(name + "() takes exactly one argument (0 given)");
      const std::string& affix = str_arg(a.positional[0], (name + "() argument").c_str());
      if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) return Value(s.substr(affix.size()));
      if (name == "removesuffix" && !affix.empty() && s.size() >= affix.size() &&
          s.compare(s.size() - affix.size(), affix.size(), affix) == 0)
        return Value(s.substr(0, s.size() - affix.size()));
      return Value(s);
    });
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace")
    return bound(name, [s, name](const Args&) {
      if (s.empty()) return Value(false);
      for (const std::string& cp : code_points(s)) {
        const bool digit = cp.size() == 1 && cp[0] >= '0' && cp[0] <= '9';
        const bool alpha = is_cased(cp) || (cp.size() == 1 && is_ascii_alpha(cp[0]));
        if (name == "isdigit" && !digit) return Value(false);
        if (name == "isalpha" && !alpha) return Value(false);
        if (name == "isalnum" && !digit && !alpha) return Value(false);
        if (name == "isspace" && !is_space(cp)) return Value(false);
      }
      return Value(true);
    });
  if (name == "isupper" || name == "islower")
    return bound(name, [s, name](const Args&) {
      // Python: every cased character in that case, and at least one.
      bool any = false;
      for (const std::string& cp : code_points(s)) {
        if (!is_cased(cp)) continue;
        if (name == "islower" ? !is_lower_cp(cp) : !is_upper_cp(cp)) return Value(false);
        any = true;
      }
      return Value(any);
    });
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

// The list methods the immutable sandbox allows (append and the like are refused).
Value list_method(const Value& l, const std::string& name) {
  if (name == "count" || name == "index")
    return bound(name, [l, name](const Args& a) -> Value {
      if (a.positional.empty()) throw Failure(name + "() takes exactly one argument (0 given)");
      int64_t count = 0;
      for (size_t i = 0; i < l.items().size(); ++i)
        if (equal(l.items()[i], a.positional[0])) {
          if (name == "index") return static_cast<int64_t>(i);
          ++count;
        }
      if (name == "index") throw Failure(repr(a.positional[0]) + " is not in list");
      return count;
    });
  return Value();
}

Value dict_method(const Value& d, const std::string& name) {
  if (name == "items")
    return bound(name, [d](const Args&) {
      std::vector<Value> pairs;
      for (const auto& [k, v] : d.dict().entries) pairs.push_back(Value::list({Value(k), v}, true));
      return Value::dict_view("dict_items", std::move(pairs));
    });
  if (name == "keys")
    return bound(name, [d](const Args&) {
      std::vector<Value> keys;
      for (const auto& [k, v] : d.dict().entries) keys.emplace_back(k);
      return Value::dict_view("dict_keys", std::move(keys));
    });
  if (name == "values")
    return bound(name, [d](const Args&) {
      std::vector<Value> values;
      for (const auto& [k, v] : d.dict().entries) values.push_back(v);
      return Value::dict_view("dict_values", std::move(values));
    });
  if (name == "get")
    return bound(name, [d](const Args& a) {
      if (a.positional.empty()) throw Failure("get expected at least 1 argument, got 0");
      const Value* fallback = a.get(1, "default");
      const Value* found = a.positional[0].is_string() ? d.dict().find(a.positional[0].str()) : nullptr;
      return found ? *found : fallback ? *fallback : Value(None{});
    });
  return Value();
}

std::string object_name(const Value& v) { return v.is_none() ? "None" : type_name(v) + " object"; }

}  // namespace

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::vector<std::string> cps = code_points(s);
  std::vector<std::string> set;
  const bool spaces = chars.is_none() || chars.is_undefined();
  if (!spaces) set = code_points(str_arg(chars, "strip arg"));
  auto strip_it = [&](const std::string& cp) {
    return spaces ? is_space(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t begin = 0, end = cps.size();
  if (left)
    while (begin < end && strip_it(cps[begin])) ++begin;
  if (right)
    while (end > begin && strip_it(cps[end - 1])) --end;
  std::string out;
  for (size_t i = begin; i < end; ++i) out += cps[i];
  return out;
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(obj);
    case Value::Kind::kDict: {
      // Python's getattr comes first: d.items is the method even when "items" is a key.
      Value method = dict_method(obj, name);
      if (!method.is_undefined()) return method;
      if (const Value* v = obj.dict().find(name)) return *v;
      break;
    }
    case Value::Kind::kNamespace:
      if (const Value* v = obj.ns().attrs.find(name)) return *v;
      break;
    case Value::Kind::kString:
      return str_method(obj.str(), name);
    case Value::Kind::kList: {
      if (obj.view()) break;  // dict views have no count() or index()
      Value method = list_method(obj, name);
      if (!method.is_undefined()) return method;
      break;
    }
    default:
      break;
  }
  return Value::undefined("'" + object_name(obj) + "' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_view()) return Value::undefined("'" + object_name(obj) + "' is not subscriptable");
  if (key.is_integral() && (obj.is_list() || obj.is_string())) {
    const int64_t n = length(obj);
    int64_t i = key.integer();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("'" + object_name(obj) + "' has no element " + to_str(key));
    if (obj.is_list()) return obj.items()[i];
    return Value(code_points(obj.str())[i]);
  }
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.dict().find(key.str())) return *v;
  }
  // jinja2 falls back to the attribute of that name: d["items"] is the method when no such key.
  if (key.is_string()) return get_attr(obj, key.str());
  return Value::undefined("'" + object_name(obj) + "' has no element " + repr(key));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if ((!obj.is_list() && !obj.is_string()) || obj.is_view())
    return Value::undefined("'" + object_name(obj) + "' cannot be sliced");
  for (const Value* part : {&start, &stop, &step})
    if (!part->is_none() && !part->is_integral())
      throw Failure("slice indices must be integers or None or have an __index__ method");
  const int64_t n = length(obj);
  const int64_t by = step.is_none() ? 1 : step.integer();
  if (by == 0) throw Failure("slice step cannot be zero");
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](const Value& v, int64_t fallback) {
    if (v.is_none()) return fallback;
    int64_t i = v.integer();
    if (i < 0) {
      i += n;
      if (i < 0) i = by < 0 ? -1 : 0;
    } else if (i >= n) {
      i = by < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t from = adjust(start, by < 0 ? n - 1 : 0);
  const int64_t to = adjust(stop, by < 0 ? -1 : n);
  std::vector<int64_t> picks;
  for (int64_t i = from; by > 0 ? i < to : i > to; i += by) picks.push_back(i);
  if (obj.is_list()) {
    std::vector<Value> items;
    for (int64_t i : picks) items.push_back(obj.items()[i]);
    return Value::list(std::move(items), obj.is_tuple());
  }
  const std::vector<std::string> cps = code_points(obj.str());
  std::string out;
  for (int64_t i : picks) out += cps[i];
  return Value(out);
}

Dict make_globals(std::vector<Value>* namespaces) {
  Dict g;
  g.set("raise_exception", Value::function("raise_exception", [](const Args& a) -> Value {
          throw Failure(a.positional.empty() ? std::string("raise_exception() called") : to_str(a.positional[0]));
        }));
  g.set("strftime_now", Value::function("strftime_now", [](const Args& a) {
          if (a.positional.empty() || !a.positional[0].is_string())
            throw Failure("strftime_now(format) needs a format string");
          const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
          std::tm local{};
          localtime_r(&now, &local);
          std::string buf(256, '\0');
          for (;;) {
            const size_t n = std::strftime(buf.data(), buf.size(), a.positional[0].str().c_str(), &local);
            if (n > 0 || a.positional[0].str().empty() || buf.size() > 65536) return Value(buf.substr(0, n));
            buf.resize(buf.size() * 4);
          }
        }));
  auto dict_of = [](const Args& a) {
    Dict d;
    for (const Value& p : a.positional) {
      if (!p.is_dict()) throw Failure("'" + type_name(p) + "' object is not a mapping");
      for (const auto& [k, v] : p.dict().entries) d.set(k, v);
    }
    for (const auto& [k, v] : a.keyword) d.set(k, v);
    return d;
  };
  g.set("namespace", Value::function("namespace", [dict_of, namespaces](const Args& a) {
          namespaces->push_back(Value::ns(dict_of(a)));
          return namespaces->back();
        }));
  g.set("dict", Value::function("dict", [dict_of](const Args& a) { return Value::dict(dict_of(a)); }));
  g.set("range", Value::function("range", [](const Args& a) {
          if (a.positional.empty() || a.positional.size() > 3) throw Failure("range expected 1 to 3 arguments");
          for (const Value& v : a.positional)
            if (!v.is_integral()) throw Failure("'" + type_name(v) + "' object cannot be interpreted as an integer");
          int64_t start = 0, stop, step = 1;
          if (a.positional.size() == 1) {
            stop = a.positional[0].integer();
          } else {
            start = a.positional[0].integer();
            stop = a.positional[1].integer();
            if (a.positional.size() == 3) step = a.positional[2].integer();
          }
          if (step == 0) throw Failure("range() arg 3 must not be zero");
          std::vector<Value> items;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            // jinja2's sandbox refuses ranges over MAX_RANGE items.
            if (items.size() >= 100000)
              throw Failure("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            items.emplace_back(i);
          }
          return Value::list(std::move(items));
        }));
  return g;
}

}  // namespace afq::jinja
