// The values a Jinja template computes with, behaving as the Python objects jinja2 would hold:
// undefined (jinja2's Undefined: prints as "", iterates as empty, fails when used further), None,
// bool, int, float, str (UTF-8; lengths and indices count code points), list/tuple, dict (keys
// in insertion order), namespace (the one mutable object) and functions (macros, methods).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "jinja_unicode.h"

namespace afq::jinja {

class Value;

// An error the template's evaluation raises (Python's TypeError, jinja2's UndefinedError, ...);
// the evaluator adds where in the template it happened.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Undefined {
  std::string hint;  // why it is undefined, the message once it is used: "'x' is undefined"
};
struct None {};

struct Seq {
  std::vector<Value> items;
  bool tuple = false;          // prints as (a, b) and is never equal to a list, as in Python
  const char* view = nullptr;  // d.items(), keys(), values(): print as dict_items([...])
};

struct Dict {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order, as Python's dict
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

struct Namespace {
  Dict attrs;
};

// Arguments of a call: positional, then keyword ones.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`; nullptr when neither was given.
  const Value* get(size_t index, std::string_view name) const;
};

struct Function {
  std::string name;
  std::function<Value(const Args&)> call;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };

  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(size_t i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Undefined u) : v_(std::move(u)) {}
  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict_view(const char* name, std::vector<Value> items);
  static Value dict(Dict dict);
  static Value ns(Dict attrs);
  static Value function(std::string name, std::function<Value(const Args&)> call);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  // int, float or bool (a bool is an int in Python).
  bool is_number() const { return kind() == Kind::kInt || kind() == Kind::kFloat || kind() == Kind::kBool; }
  bool is_integral() const { return kind() == Kind::kInt || kind() == Kind::kBool; }

  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }
  bool boolean() const { return std::get<bool>(v_); }
  int64_t integer() const;  // int or bool
  double number() const;    // int, float or bool
  const std::string& str() const { return std::get<std::string>(v_); }
  const std::vector<Value>& items() const { return std::get<std::shared_ptr<const Seq>>(v_)->items; }
  bool is_tuple() const { return std::get<std::shared_ptr<const Seq>>(v_)->tuple; }
  const char* view() const { return std::get<std::shared_ptr<const Seq>>(v_)->view; }
  // A dict view iterates like a list but is no list: no ==, <, +, indexing or JSON.
  bool is_view() const { return is_list() && view(); }
  const Dict& dict() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Namespace& ns() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Function& function() const { return *std::get<std::shared_ptr<const Function>>(v_); }
  // Python's `is`: containers are the same object; scalars compare by value (CPython shares
  // None, the bools, small ints and interned strings).
  bool same_object(const Value& other) const;

 private:
  // The order of the alternatives is Kind's.
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const Seq>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Function>>
      v_;
};

// Python's type name of a value, for messages: "int", "str", "dict", "NoneType", ...
std::string type_name(const Value& v);
// Throws the UndefinedError jinja2 raises when an undefined value is used.
[[noreturn]] void fail_undefined(const Value& v);

// Python's str() and repr() (as jinja2 prints values: undefined prints as "").
std::string to_str(const Value& v);
std::string repr(const Value& v);
std::string float_repr(double d);  // Python's repr(float): shortest round trip, "1.0", "1e-05"
bool truthy(const Value& v);

// Python's ==, and <'s three-way form (throws Failure for unorderable types, as Python does).
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);

// Python's operators on the values jinja2 passes them: + - * / // % ** and unary minus.
Value binary_op(std::string_view op, const Value& a, const Value& b);
Value negate(const Value& v);
// `needle in haystack`.
bool contains(const Value& haystack, const Value& needle);

// What a for loop (and list()) walks: list items, dict keys, string characters; undefined is
// empty. Throws Failure for what Python cannot iterate.
std::vector<Value> iterate(const Value& v);

// Python's len(): code points of a string, items of a list, keys of a dict.
int64_t length(const Value& v);

// The context's values from JSON, and back (for tojson).
Value from_json(const nlohmann::ordered_json& j);

}  // namespace afq::jinja
