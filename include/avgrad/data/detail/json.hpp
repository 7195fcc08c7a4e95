// A small strict JSON reader and writer for file headers (safetensors).
//
// The reader accepts RFC 8259 JSON; integers stay exact 64-bit integers (headers hold
// sizes and offsets), other numbers become doubles (Kind::Number). It is meant for hostile input: every read is
// bounds-checked, nesting is limited (kMaxDepth) so recursion cannot exhaust the stack, the number of values is limited
// so a large header cannot turn into an unbounded allocation, strings must be valid UTF-8
// (escapes included: surrogates must pair), and duplicate object keys are an error rather
// than a silent "last one wins". Every failure throws avgrad::Error("json", "<reason> at
// byte <offset>").
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"

namespace avgrad::detail::json {

inline constexpr int kMaxDepth = 64;
inline constexpr std::size_t kMaxValues = std::size_t(1) << 21;  // ~200 MB of parsed values at most

/// A parsed value. Objects keep their keys in document order.
struct Value {
  enum class Kind : std::uint8_t { Null, Bool, Int, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::int64_t integer = 0;
  double number = 0;  ///< a non-integer number (fraction or exponent)
  std::string string;
  std::vector<Value> items;       ///< array elements, or object values
  std::vector<std::string> keys;  ///< object keys, parallel to items

  bool is_object() const noexcept { return kind == Kind::Object; }
  bool is_array() const noexcept { return kind == Kind::Array; }
  bool is_string() const noexcept { return kind == Kind::String; }
  bool is_int() const noexcept { return kind == Kind::Int; }
  bool is_number() const noexcept { return kind == Kind::Int || kind == Kind::Number; }
  /// Any number as a double.
  double as_double() const noexcept { return kind == Kind::Int ? static_cast<double>(integer) : number; }
  /// The value of `key` in an object, or nullptr.
  const Value* find(std::string_view key) const noexcept {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }
};

inline const char* kind_name(Value::Kind k) noexcept {
  switch (k) {
    case Value::Kind::Null:
      return "null";
    case Value::Kind::Bool:
      return "boolean";
    case Value::Kind::Int:
      return "integer";
    case Value::Kind::Number:
      return "non-integer number";
    case Value::Kind::String:
      return "string";
    case Value::Kind::Array:
      return "array";
    case Value::Kind::Object:
      return "object";
  }
  return "?";
}

/// Length of the UTF-8 sequence starting at s[i] if it is well formed (shortest form, no
/// surrogates, at most U+10FFFF), else 0.
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const std::size_t n = s.size();
  const unsigned c = b(i);
  if (c < 0x80) return 1;
  const auto cont = [&](std::size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    const unsigned c1 = b(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;   // overlong
    if (c == 0xED && c1 >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    const unsigned c1 = b(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;   // overlong
    if (c == 0xF4 && c1 >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

inline bool is_valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view text, std::size_t max_values = kMaxValues) : s_(text), max_values_(max_values) {}

  /// Parses one value filling the whole text (surrounding whitespace allowed).
  Value parse_document() {
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const { throw Error("json", concat(what, " at byte ", pos_)); }
  bool at_end() const noexcept { return pos_ >= s_.size(); }
  char peek() const noexcept { return s_[pos_]; }  // callers check at_end() first

  void skip_ws() noexcept {
    while (!at_end()) {
      const char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }
  void expect(char c, std::string_view context) {
    if (at_end()) fail(concat("unexpected end of input, expected '", c, "' ", context));
    if (peek() != c) fail(concat("expected '", c, "' ", context));
    ++pos_;
  }
  void count_value() {
    if (++values_ > max_values_) fail(concat("more than ", max_values_, " values"));
  }

  Value parse_value(int depth) {
    if (at_end()) fail("unexpected end of input, expected a value");
    count_value();
    Value v;
    switch (peek()) {
      case '{':
        parse_object(v, depth + 1);
        break;
      case '[':
        parse_array(v, depth + 1);
        break;
      case '"':
        v.kind = Value::Kind::String;
        v.string = parse_string();
        break;
      case 't':
        literal("true");
        v.kind = Value::Kind::Bool;
        v.boolean = true;
        break;
      case 'f':
        literal("false");
        v.kind = Value::Kind::Bool;
        break;
      case 'n':
        literal("null");
        break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          parse_number(v);
        } else {
          fail("unexpected character, expected a value");
        }
    }
    return v;
  }

  void literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  void parse_object(Value& v, int depth) {
    if (depth > kMaxDepth) fail(concat("nesting deeper than ", kMaxDepth));
    v.kind = Value::Kind::Object;
    ++pos_;  // '{'
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return;
    }
    std::unordered_set<std::string> seen;  // copies: views into keys would dangle on growth
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"')
        fail(at_end() ? "unexpected end of input, expected a key" : "expected a string key");
      const std::size_t key_pos = pos_;
      v.keys.push_back(parse_string());
      if (!seen.insert(v.keys.back()).second) {
        pos_ = key_pos;
        fail(concat("duplicate key \"", v.keys.back(), "\""));
      }
      skip_ws();
      expect(':', "after an object key");
      skip_ws();
      v.items.push_back(parse_value(depth));
      skip_ws();
      if (at_end()) fail("unexpected end of input in an object");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return;
      }
      fail("expected ',' or '}' in an object");
    }
  }
  void parse_array(Value& v, int depth) {
    if (depth > kMaxDepth) fail(concat("nesting deeper than ", kMaxDepth));
    v.kind = Value::Kind::Array;
    ++pos_;  // '['
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      v.items.push_back(parse_value(depth));
      skip_ws();
      if (at_end()) fail("unexpected end of input in an array");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return;
      }
      fail("expected ',' or ']' in an array");
    }
  }

  /// An integer (exact, Kind::Int) or, with a fraction or exponent, a double.
  void parse_number(Value& v) {
    const std::size_t start = pos_;
    std::size_t end = pos_ + (peek() == '-' ? 1 : 0);
    auto digits = [&] {
      const std::size_t first = end;
      while (end < s_.size() && s_[end] >= '0' && s_[end] <= '9') ++end;
      return end > first;
    };
    digits();
    const bool fraction = end < s_.size() && s_[end] == '.';
    const bool exponent_next = end < s_.size() && (s_[end] == 'e' || s_[end] == 'E');
    if (!fraction && !exponent_next) {
      v.kind = Value::Kind::Int;
      v.integer = parse_integer();
      return;
    }
    parse_integer_digits_only();  // validates sign, digits and leading zeros of the integer part
    end = pos_;
    if (fraction) {
      ++end;
      pos_ = end;
      if (!digits()) fail("expected a digit after the decimal point");
    }
    if (end < s_.size() && (s_[end] == 'e' || s_[end] == 'E')) {
      ++end;
      if (end < s_.size() && (s_[end] == '+' || s_[end] == '-')) ++end;
      pos_ = end;
      if (!digits()) fail("expected a digit in the exponent");
    }
    const std::string text(s_.substr(start, end - start));
    v.kind = Value::Kind::Number;
    v.number = std::strtod(text.c_str(), nullptr);
    pos_ = end;
    if (!std::isfinite(v.number)) fail("number out of the double range");
  }

  void parse_integer_digits_only() {
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') fail("expected a digit");
    if (peek() == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9')
      fail("leading zeros are not allowed");
    while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
  }

  std::int64_t parse_integer() {
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') fail("expected a digit");
    if (peek() == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9')
      fail("leading zeros are not allowed");
    // Accumulate the magnitude as unsigned so INT64_MIN parses without overflow.
    const std::uint64_t limit =
        negative ? std::uint64_t(1) << 63 : std::uint64_t(std::numeric_limits<std::int64_t>::max());
    std::uint64_t m = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const auto d = static_cast<std::uint64_t>(peek() - '0');
      if (m > (limit - d) / 10) fail("integer out of the 64-bit range");
      m = m * 10 + d;
      ++pos_;
    }
    if (!negative) return static_cast<std::int64_t>(m);
    return m == (std::uint64_t(1) << 63) ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(m);
  }

  unsigned hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned u = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_++];
      u <<= 4;
      if (c >= '0' && c <= '9')
        u |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        u |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        u |= static_cast<unsigned>(c - 'A' + 10);
      else
        fail("invalid hex digit in a \\u escape");
    }
    return u;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const char c = peek();
      const auto u = static_cast<unsigned char>(c);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (u < 0x20) fail("unescaped control character in a string");
      if (c == '\\') {
        ++pos_;
        if (at_end()) fail("unterminated escape");
        const char e = s_[pos_++];
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            unsigned cp = hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (s_.size() - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
                fail("unpaired high surrogate in a \\u escape");
              pos_ += 2;
              const unsigned lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired high surrogate in a \\u escape");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default:
            --pos_;
            fail("invalid escape");
        }
        continue;
      }
      if (u < 0x80) {
        out += c;
        ++pos_;
        continue;
      }
      const std::size_t len = utf8_sequence_length(s_, pos_);
      if (len == 0) fail("invalid UTF-8 in a string");
      out.append(s_.substr(pos_, len));
      pos_ += len;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
  std::size_t max_values_;
};

/// Parses a complete JSON document; throws avgrad::Error("json", ...) on any defect.
inline Value parse(std::string_view text, std::size_t max_values = kMaxValues) {
  return Parser(text, max_values).parse_document();
}

/// Appends s as a JSON string literal. s must be valid UTF-8 (callers check with
/// is_valid_utf8); control characters are escaped, everything else is written as is.
inline void write_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// Appends v as compact JSON.
inline void write(std::string& out, const Value& v) {
  switch (v.kind) {
    case Value::Kind::Null:
      out += "null";
      break;
    case Value::Kind::Bool:
      out += v.boolean ? "true" : "false";
      break;
    case Value::Kind::Int:
      out += std::to_string(v.integer);
      break;
    case Value::Kind::Number: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.number);
      out += buf;
      break;
    }
    case Value::Kind::String:
      write_string(out, v.string);
      break;
    case Value::Kind::Array:
      out += '[';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ',';
        write(out, v.items[i]);
      }
      out += ']';
      break;
    case Value::Kind::Object:
      out += '{';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ',';
        write_string(out, v.keys[i]);
        out += ':';
        write(out, v.items[i]);
      }
      out += '}';
      break;
  }
}

}  // namespace avgrad::detail::json
