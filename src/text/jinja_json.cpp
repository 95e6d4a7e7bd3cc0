// transformers' tojson filter: Python's json.dumps(value, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False) over template values.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "jinja_builtins.h"

namespace afq::jinja {

namespace {

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    char buf[16];
    if (c < 0x20) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else if (c >= 0x80 && ensure_ascii) {
      const std::string cp = code_points(std::string_view(s).substr(i, 4))[0];
      uint32_t v = decode_utf8(cp);
      if (v >= 0x10000) {  // a surrogate pair, as Python writes it
        v -= 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", v);
      }
      out += buf;
      i += cp.size() - 1;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

struct JsonStyle {
  bool ensure_ascii;
  bool pretty;
  std::string indent;
  std::string item_sep, key_sep;
  bool sort_keys;
};

void dump_json(const Value& v, std::string& out, const JsonStyle& st, int level) {
  auto newline = [&](int at) {
    if (!st.pretty) return;
    out += '\n';
    for (int i = 0; i < at; ++i) out += st.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.boolean() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.integer());
      return;
    case Value::Kind::kFloat: {
      const double d = v.number();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : float_repr(d);
      return;
    }
    case Value::Kind::kString:
      append_json_string(out, v.str(), st.ensure_ascii);
      return;
    case Value::Kind::kList: {
      if (v.is_view()) throw Failure("Object of type " + type_name(v) + " is not JSON serializable");
      if (v.items().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i) out += st.item_sep;
        newline(level + 1);
        dump_json(v.items()[i], out, st, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Kind::kDict: {
      if (v.dict().entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.dict().entries) entries.push_back(&e);
      if (st.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += st.item_sep;
        newline(level + 1);
        append_json_string(out, entries[i]->first, st.ensure_ascii);
        out += st.key_sep;
        dump_json(entries[i]->second, out, st, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default:
      throw Failure("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, bool ensure_ascii, const Value& indent, const Value& separators, bool sort_keys) {
  JsonStyle st{ensure_ascii, !indent.is_none() && !indent.is_undefined(), "", ", ", ": ", sort_keys};
  if (st.pretty) {
    st.indent = indent.is_string() ? indent.str() : std::string(std::max<int64_t>(0, indent.integer()), ' ');
    st.item_sep = ",";
  }
  if (separators.is_list()) {
    if (separators.items().size() != 2 || !separators.items()[0].is_string() || !separators.items()[1].is_string())
      throw Failure("separators must be an (item_separator, key_separator) pair of strings");
    st.item_sep = separators.items()[0].str();
    st.key_sep = separators.items()[1].str();
  }
  std::string out;
  dump_json(v, out, st, 0);
  return out;
}

}  // namespace afq::jinja
