// Typed reads of the fields of user JSON files that name the file and the field when a value has
// the wrong type: nlohmann's own type_error ("type must be string, but is number") names neither.
#pragma once

#include <limits>
#include <string>
#include <type_traits>

#include "core/core.h"

namespace atax {

// A JSON value's kind in words, for messages: "a string", "an array", "null", ...
inline std::string json_kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

// "where.key", or "key" at the top level.
inline std::string json_path(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

// `j` itself when it is an object, an empty object when it is null (absent); fails with Error
// naming `file` and the field `where` for anything else.
inline const json& json_object_or_empty(const json& j, const std::string& where, const std::string& file,
                                        const std::string& hint = {}) {
  static const json empty = json::object();
  if (j.is_null()) return empty;
  if (!j.is_object())
    throw Error("field \"" + where + "\" is " + json_kind(j) + ", expected an object", file, hint);
  return j;
}

// obj[key] as T (std::string, bool, an arithmetic type or json), or `fallback` when `obj` has no
// `key` or holds null there. Fails with Error naming `file` and the field "where.key" when the
// value has another type (an integer type also refuses a fractional or out-of-range number).
template <class T>
T json_field(const json& obj, const std::string& key, T fallback, const std::string& file,
             const std::string& where = {}, const std::string& hint = {}) {
  if (!obj.is_object()) {
    if (obj.is_null()) return fallback;
    throw Error("field \"" + (where.empty() ? std::string("(top level)") : where) + "\" is " + json_kind(obj) +
                    ", expected an object",
                file, hint);
  }
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  const json& v = *it;
  auto wrong = [&](const char* want) {
    return Error("field \"" + json_path(where, key) + "\" is " + json_kind(v) + " (" + v.dump().substr(0, 40) +
                     "), expected " + want,
                 file, hint);
  };
  if constexpr (std::is_same_v<T, json>) {
    return v;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) throw wrong("a string");
    return v.get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw wrong("true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) throw wrong("an integer");
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())
                               : (v.get<int64_t>() < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                                  (std::is_signed_v<T> && v.get<int64_t>() > static_cast<int64_t>(std::numeric_limits<T>::max()))))
      throw wrong("an integer in range");
    return v.get<T>();
  } else {
    static_assert(std::is_floating_point_v<T>, "json_field: unsupported type");
    if (!v.is_number()) throw wrong("a number");
    return v.get<T>();
  }
}

// A string element of an array field, named "where[i]" on a wrong type.
inline std::string json_string_at(const json& arr, size_t i, const std::string& file, const std::string& where,
                                  const std::string& hint = {}) {
  const json& v = arr.at(i);
  if (!v.is_string())
    throw Error("field \"" + where + "[" + std::to_string(i) + "]\" is " + json_kind(v) + ", expected a string", file,
                hint);
  return v.get<std::string>();
}

}  // namespace atax
