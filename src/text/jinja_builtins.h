// What a template can call on values: jinja2's filters and tests (jinja_filters.cpp), attribute
// and item access with Python's str and dict methods, and the globals of transformers'
// environment (jinja_methods.cpp). All throw Failure with Python's message when Python would
// raise.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jinja_value.h"

namespace afq::jinja {

using FilterFn = Value (*)(const Value& input, const Args& args);
using TestFn = bool (*)(const Value& value, const Args& args);

// nullptr when there is no such filter or test; Failure for jinja2's that afq does not have.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
// Throws Failure, as Python would, when a test gets more arguments than it takes.
void check_test_arguments(std::string_view name, const Args& args);

// obj.name: a dict's key (or its method items/keys/values/get), a namespace's attribute, a str
// method; else undefined. Throws when obj is undefined.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list and str indices (negative from the end), dict keys; else undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on a list or str; None for a part left out.
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The globals of transformers' environment: raise_exception, strftime_now, namespace, range, dict.
// Each namespace() made is appended to *namespaces, so that the renderer can break the reference
// cycles a template may build with them (`set ns.self = ns`).
Dict make_globals(std::vector<Value>* namespaces);

// transformers' tojson: json.dumps(value, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False).
std::string to_json(const Value& v, bool ensure_ascii, const Value& indent, const Value& separators, bool sort_keys);

// Python's str methods the filters share.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);

}  // namespace afq::jinja
