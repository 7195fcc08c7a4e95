// safetensors files: read, validate and write named tensors in the format PyTorch and NumPy
// users exchange (https://github.com/huggingface/safetensors).
//
// Layout: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the data buffer.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte
// offsets into the data buffer, elements little-endian in row-major order) and may carry
// "__metadata__": {string: string}.
//
// The reader treats every file as hostile: SafetensorsFile::open checks the whole header
// before anything is used (header size, JSON, dtype, shape × itemsize = byte range, ranges
// inside the buffer, no overlap, no uncovered bytes) and every failure is an avgrad::Error
// naming the file and the offending entry and field. get<T>() converts from the stored dtype
// only when the kind is preserved (floating → floating, integer → integer with a range
// check, BOOL/U8 → bool/uint8).
//
// The writer follows the layout of the reference implementation: header
// padded with spaces to a multiple of 8 bytes, data ordered by decreasing element size then
// name (so every tensor is aligned to its element size), "format": "pt" metadata by default,
// and the file replaced atomically (data/atomic_file.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/half.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"
#include "avgrad/data/detail/json.hpp"

namespace avgrad {

/// Element types a tensor file may store. Names are safetensors' ("F32", ...); npy's
/// descriptors map onto the same set.
enum class StoredDtype : std::uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

namespace detail {

struct StoredDtypeInfo {
  StoredDtype code;
  std::string_view name;
  int itemsize;
  char kind;  ///< 'f' floating, 'i' signed, 'u' unsigned, 'b' bool
};

inline constexpr std::array<StoredDtypeInfo, 13> kStoredDtypes{{
    {StoredDtype::F64, "F64", 8, 'f'},
    {StoredDtype::F32, "F32", 4, 'f'},
    {StoredDtype::F16, "F16", 2, 'f'},
    {StoredDtype::BF16, "BF16", 2, 'f'},
    {StoredDtype::I64, "I64", 8, 'i'},
    {StoredDtype::I32, "I32", 4, 'i'},
    {StoredDtype::I16, "I16", 2, 'i'},
    {StoredDtype::I8, "I8", 1, 'i'},
    {StoredDtype::U64, "U64", 8, 'u'},
    {StoredDtype::U32, "U32", 4, 'u'},
    {StoredDtype::U16, "U16", 2, 'u'},
    {StoredDtype::U8, "U8", 1, 'u'},
    {StoredDtype::BOOL, "BOOL", 1, 'b'},
}};

inline const StoredDtypeInfo& stored_info(StoredDtype d) { return kStoredDtypes[static_cast<std::size_t>(d)]; }

inline const StoredDtypeInfo* find_stored_dtype(std::string_view name) {
  for (const auto& i : kStoredDtypes)
    if (i.name == name) return &i;
  return nullptr;
}

/// The stored dtype an avgrad element type is written as.
template <Element T> constexpr StoredDtype stored_dtype_of() {
  if constexpr (std::same_as<T, float>)
    return StoredDtype::F32;
  else if constexpr (std::same_as<T, double>)
    return StoredDtype::F64;
  else if constexpr (std::same_as<T, std::int32_t>)
    return StoredDtype::I32;
  else if constexpr (std::same_as<T, std::int64_t>)
    return StoredDtype::I64;
  else if constexpr (std::same_as<T, bool>)
    return StoredDtype::BOOL;
  else
    return StoredDtype::U8;
}

/// Whether get<T>() accepts a tensor stored as `d`: the conversion keeps the kind of value.
template <Element T> constexpr bool stored_convertible(StoredDtype d) {
  const char k = stored_info(d).kind;
  if constexpr (Floating<T>)
    return k == 'f';
  else if constexpr (std::same_as<T, std::int32_t> || std::same_as<T, std::int64_t>)
    return k == 'i' || k == 'u';
  else
    return d == StoredDtype::U8 || d == StoredDtype::BOOL;  // bool, uint8
}

/// A scalar of type U from little-endian bytes (any host byte order, any alignment).
template <class U> U load_le(const std::uint8_t* p) {
  std::array<std::uint8_t, sizeof(U)> b;
  std::memcpy(b.data(), p, sizeof(U));
  if constexpr (std::endian::native == std::endian::big) std::reverse(b.begin(), b.end());
  return std::bit_cast<U>(b);
}
/// Appends the little-endian bytes of a scalar.
template <class U> void store_le(std::uint8_t* p, U v) {
  auto b = std::bit_cast<std::array<std::uint8_t, sizeof(U)>>(v);
  if constexpr (std::endian::native == std::endian::big) std::reverse(b.begin(), b.end());
  std::memcpy(p, b.data(), sizeof(U));
}

/// Reads element i of a stored buffer as double / int64 / uint64 (callers pick by kind).
inline double stored_as_double(StoredDtype d, const std::uint8_t* p) {
  switch (d) {
    case StoredDtype::F64:
      return load_le<double>(p);
    case StoredDtype::F32:
      return load_le<float>(p);
    case StoredDtype::F16:
      return half_detail::half_bits_to_float(load_le<std::uint16_t>(p));
    case StoredDtype::BF16:
      return half_detail::bf16_bits_to_float(load_le<std::uint16_t>(p));
    default:
      return 0;
  }
}

/// Converts n elements stored as `d` at `src` into `out`. `op` and `what` ("<file>: tensor
/// \"w\"") name the source in errors; the caller has checked stored_convertible<T>(d).
template <Element T> void convert_stored(StoredDtype d, const std::uint8_t* src, std::int64_t n, T* out,
                                         std::string_view op, const std::string& what) {
  const int isz = stored_info(d).itemsize;
  const auto count = static_cast<std::size_t>(n);
  if constexpr (!std::same_as<T, bool>) {
    // Same representation: one copy (bool is excluded, its bytes must be validated).
    if (d == stored_dtype_of<T>() && std::endian::native == std::endian::little) {
      if (count) std::memcpy(out, src, count * sizeof(T));
      return;
    }
  }
  if constexpr (Floating<T>) {
    if (d == StoredDtype::F32) {
      for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(load_le<float>(src + 4 * i));
    } else {
      for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(stored_as_double(d, src + i * isz));
    }
  } else if constexpr (std::same_as<T, std::int32_t> || std::same_as<T, std::int64_t>) {
    const bool is_signed = stored_info(d).kind == 'i';
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t* p = src + i * isz;
      if (is_signed) {
        std::int64_t v = 0;
        switch (isz) {
          case 1:
            v = load_le<std::int8_t>(p);
            break;
          case 2:
            v = load_le<std::int16_t>(p);
            break;
          case 4:
            v = load_le<std::int32_t>(p);
            break;
          default:
            v = load_le<std::int64_t>(p);
            break;
        }
        AVGRAD_CHECK(v >= std::numeric_limits<T>::min() && v <= std::numeric_limits<T>::max(), op, what, ": element ",
                     i, " = ", v, " does not fit in ", dtype_name<T>());
        out[i] = static_cast<T>(v);
      } else {
        std::uint64_t v = 0;
        switch (isz) {
          case 1:
            v = load_le<std::uint8_t>(p);
            break;
          case 2:
            v = load_le<std::uint16_t>(p);
            break;
          case 4:
            v = load_le<std::uint32_t>(p);
            break;
          default:
            v = load_le<std::uint64_t>(p);
            break;
        }
        AVGRAD_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()), op, what, ": element ", i, " = ",
                     v, " does not fit in ", dtype_name<T>());
        out[i] = static_cast<T>(v);
      }
    }
  } else {
    // bool or uint8 from BOOL or U8: BOOL bytes must be 0/1; reading U8 as bool needs 0/1.
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t v = src[i];
      if (d == StoredDtype::BOOL || std::same_as<T, bool>)
        AVGRAD_CHECK(v <= 1, op, what, ": element ", i, " = ", int(v), " is not a valid bool (0 or 1)");
      out[i] = static_cast<T>(v);
    }
  }
}

/// a · b for non-negative a, b; false on overflow of u64.
inline bool mul_u64(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

inline std::string quoted(std::string_view s) { return concat('"', s, '"'); }

/// "2,3" for shape (2, 3): the body of a JSON array.
inline std::string json_shape(const std::vector<std::int64_t>& shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s;
}

}  // namespace detail

/// One tensor of a safetensors file: where its bytes are and how to read them.
struct TensorEntry {
  std::string name;
  std::string dtype;  ///< "F32", "I64", "BOOL", ...
  StoredDtype code = StoredDtype::F32;
  std::vector<std::int64_t> shape;   ///< any rank; get() needs rank <= kMaxRank
  std::uint64_t begin = 0, end = 0;  ///< byte range in the data buffer

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;  // validated not to overflow when the file was opened
    return n;
  }
  std::uint64_t nbytes() const { return end - begin; }
};

/// A validated safetensors file held in memory. All accessors are const and thread-safe.
class SafetensorsFile {
 public:
  /// Largest header accepted (the reference implementation's limit).
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  /// Reads and validates the whole file. Throws avgrad::Error naming `path` (and the entry and
  /// field at fault) when the file is missing, unreadable, truncated or malformed.
  static SafetensorsFile open(const std::filesystem::path& path) {
    return from_bytes(read_file_bytes(path, "safetensors"), path.string());
  }
  /// Validates a file image already in memory; `source` names it in errors.
  static SafetensorsFile from_bytes(std::vector<std::uint8_t> bytes, std::string source = "<memory>") {
    SafetensorsFile f;
    f.source_ = std::move(source);
    f.bytes_ = std::move(bytes);
    f.parse();
    return f;
  }

  /// The path (or in-memory name) used in messages.
  const std::string& source() const noexcept { return source_; }
  /// Tensor names in sorted order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& [k, v] : entries_) out.push_back(k);
    return out;
  }
  std::size_t size() const noexcept { return entries_.size(); }
  bool has(std::string_view name) const { return entries_.find(name) != entries_.end(); }
  const TensorEntry& entry(std::string_view name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string listing;
      std::size_t k = 0;
      for (const auto& [n, e] : entries_) {
        if (k == 8) {
          listing += ", ...";
          break;
        }
        listing += (k++ ? ", " : "") + detail::quoted(n);
      }
      throw Error("safetensors", detail::concat(source_, ": no tensor named ", detail::quoted(name), " (the file has ",
                                                entries_.size(), ": ", listing, ")"));
    }
    return it->second;
  }
  /// The stored shape; throws when its rank exceeds what avgrad tensors hold.
  Shape shape(std::string_view name) const {
    const TensorEntry& e = entry(name);
    AVGRAD_CHECK(e.shape.size() <= static_cast<std::size_t>(kMaxRank), "safetensors", source_, ": tensor ",
                 detail::quoted(name), " has rank ", e.shape.size(), ", more than avgrad's maximum ", kMaxRank);
    return Shape(e.shape);
  }
  /// The stored dtype name ("F32", ...).
  const std::string& dtype(std::string_view name) const { return entry(name).dtype; }
  /// The "__metadata__" strings (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  /// The raw little-endian bytes of a tensor.
  std::span<const std::uint8_t> raw(std::string_view name) const {
    const TensorEntry& e = entry(name);
    return {bytes_.data() + data_start_ + e.begin, static_cast<std::size_t>(e.nbytes())};
  }

  /// The tensor as a fresh contiguous Tensor<T, Cpu>, converted from the stored dtype when
  /// the kind is preserved: F64/F32/F16/BF16 → float/double; I*/U* → int32/int64 (every value
  /// range-checked); BOOL/U8 → bool/uint8 (U8 → bool only for 0/1). Anything else throws,
  /// naming the tensor, the stored dtype and the requested one.
  template <Element T> Tensor<T, Cpu> get(std::string_view name) const {
    const TensorEntry& e = entry(name);
    AVGRAD_CHECK(detail::stored_convertible<T>(e.code), "safetensors", source_, ": tensor ", detail::quoted(name),
                 " is stored as ", e.dtype, " and cannot be read as ", dtype_name<T>(),
                 " (conversions must keep the kind: floating, integer, bool/uint8)");
    const Shape s = shape(name);
    auto t = Tensor<T, Cpu>::empty(s);
    detail::convert_stored<T>(e.code, bytes_.data() + data_start_ + e.begin, e.numel(), t.data(), "safetensors",
                              detail::concat(source_, ": tensor ", detail::quoted(name)));
    return t;
  }

 private:
  SafetensorsFile() = default;

  [[noreturn]] void fail(const std::string& what) const { throw Error("safetensors", source_ + ": " + what); }
  [[noreturn]] void fail_entry(const std::string& name, std::string_view field, const std::string& what) const {
    fail(detail::concat("tensor ", detail::quoted(name), ", field ", detail::quoted(field), ": ", what));
  }

  void parse() {
    const std::size_t size = bytes_.size();
    if (size < 8) fail(detail::concat("file is ", size, " bytes, shorter than the 8-byte header length (truncated?)"));
    const auto n = detail::load_le<std::uint64_t>(bytes_.data());
    if (n > kMaxHeaderBytes)
      fail(detail::concat("header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
    if (n > size - 8)
      fail(
          detail::concat("header length ", n, " exceeds the ", size - 8, " bytes after the length field (truncated?)"));
    data_start_ = 8 + static_cast<std::size_t>(n);
    const std::uint64_t data_size = size - data_start_;
    const std::string_view text(reinterpret_cast<const char*>(bytes_.data() + 8), static_cast<std::size_t>(n));
    if (text.empty() || text.front() != '{') fail("header does not start with '{'");

    detail::json::Value header;
    try {
      header = detail::json::parse(text);
    } catch (const Error& e) {
      fail(detail::concat("invalid JSON header: ", e.what()));
    }
    using Kind = detail::json::Value::Kind;
    for (std::size_t i = 0; i < header.keys.size(); ++i) {
      const std::string& key = header.keys[i];
      const detail::json::Value& v = header.items[i];
      if (key == "__metadata__") {
        if (!v.is_object())
          fail(detail::concat("\"__metadata__\" is a ", detail::json::kind_name(v.kind), ", expected an object"));
        for (std::size_t j = 0; j < v.keys.size(); ++j) {
          if (!v.items[j].is_string())
            fail(detail::concat("\"__metadata__\" value for ", detail::quoted(v.keys[j]), " is a ",
                                detail::json::kind_name(v.items[j].kind), ", expected a string"));
          metadata_.emplace(v.keys[j], v.items[j].string);
        }
        continue;
      }
      if (!v.is_object())
        fail(detail::concat("tensor ", detail::quoted(key), " is a ", detail::json::kind_name(v.kind),
                            ", expected an object"));
      TensorEntry e;
      e.name = key;
      const detail::json::Value *dt = nullptr, *sh = nullptr, *off = nullptr;
      for (std::size_t j = 0; j < v.keys.size(); ++j) {
        const std::string& f = v.keys[j];
        if (f == "dtype")
          dt = &v.items[j];
        else if (f == "shape")
          sh = &v.items[j];
        else if (f == "data_offsets")
          off = &v.items[j];
        else
          fail_entry(key, f, "unknown field (expected dtype, shape, data_offsets)");
      }
      if (!dt) fail_entry(key, "dtype", "missing");
      if (!sh) fail_entry(key, "shape", "missing");
      if (!off) fail_entry(key, "data_offsets", "missing");

      if (!dt->is_string())
        fail_entry(key, "dtype", detail::concat("is a ", detail::json::kind_name(dt->kind), ", expected a string"));
      const detail::StoredDtypeInfo* info = detail::find_stored_dtype(dt->string);
      if (!info) fail_entry(key, "dtype", detail::concat("unknown dtype ", detail::quoted(dt->string)));
      e.dtype = std::string(info->name);
      e.code = info->code;

      if (!sh->is_array())
        fail_entry(key, "shape", detail::concat("is a ", detail::json::kind_name(sh->kind), ", expected an array"));
      std::uint64_t numel = 1, extent_product = 1;
      for (const auto& d : sh->items) {
        if (d.kind != Kind::Int)
          fail_entry(key, "shape", detail::concat("holds a ", detail::json::kind_name(d.kind), ", expected integers"));
        if (d.integer < 0) fail_entry(key, "shape", detail::concat("negative extent ", d.integer));
        const auto u = static_cast<std::uint64_t>(d.integer);
        // The product of the non-zero extents must fit in int64: shapes and strides are
        // int64 and an empty tensor's strides still multiply its other extents.
        if (!detail::mul_u64(extent_product, std::max<std::uint64_t>(u, 1), extent_product) ||
            extent_product > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          fail_entry(key, "shape", "element count overflows 64 bits");
        numel *= u;
        e.shape.push_back(d.integer);
      }

      if (!off->is_array() || off->items.size() != 2 || off->items[0].kind != Kind::Int ||
          off->items[1].kind != Kind::Int)
        fail_entry(key, "data_offsets", "expected an array of two integers [begin, end]");
      const std::int64_t b = off->items[0].integer, en = off->items[1].integer;
      if (b < 0 || en < 0) fail_entry(key, "data_offsets", detail::concat("negative offset in [", b, ", ", en, "]"));
      if (b > en) fail_entry(key, "data_offsets", detail::concat("begin ", b, " is after end ", en));
      e.begin = static_cast<std::uint64_t>(b);
      e.end = static_cast<std::uint64_t>(en);
      if (e.end > data_size)
        fail_entry(
            key, "data_offsets",
            detail::concat("range [", b, ", ", en, ") exceeds the data buffer of ", data_size, " bytes (truncated?)"));
      std::uint64_t nbytes = 0;
      if (!detail::mul_u64(numel, static_cast<std::uint64_t>(info->itemsize), nbytes) || nbytes != e.nbytes())
        fail_entry(key, "data_offsets",
                   detail::concat("range [", b, ", ", en, ") holds ", e.nbytes(), " bytes but shape ",
                                  detail::concat('(', detail::json_shape(e.shape), ')'), " of ", e.dtype, " needs ",
                                  numel, " x ", info->itemsize, " bytes"));
      entries_.emplace(key, std::move(e));
    }

    // The byte ranges must tile the data buffer exactly: no overlap (two names aliasing one
    // buffer) and no hole (bytes that belong to nothing).
    std::vector<const TensorEntry*> order;
    order.reserve(entries_.size());
    for (const auto& [k, e] : entries_) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::uint64_t cursor = 0;
    const TensorEntry* prev = nullptr;
    for (const TensorEntry* e : order) {
      if (e->begin < cursor)
        fail_entry(e->name, "data_offsets",
                   detail::concat("range [", e->begin, ", ", e->end, ") overlaps tensor ", detail::quoted(prev->name),
                                  " at [", prev->begin, ", ", prev->end, ")"));
      if (e->begin > cursor)
        fail(detail::concat("data bytes [", cursor, ", ", e->begin, ") belong to no tensor (the next is ",
                            detail::quoted(e->name), ")"));
      cursor = e->end;
      prev = e;
    }
    if (cursor != data_size)
      fail(detail::concat("data bytes [", cursor, ", ", data_size, ") after the last tensor belong to no tensor"));
  }

  std::string source_;
  std::vector<std::uint8_t> bytes_;
  std::size_t data_start_ = 8;
  std::map<std::string, TensorEntry, std::less<>> entries_;
  std::map<std::string, std::string> metadata_;
};

/// Collects named tensors and writes them as one safetensors file.
///
///   SafetensorsWriter w;
///   w.add("weight", w_tensor).add("step", scalar<std::int64_t>(10));
///   w.write("model.safetensors", {{"avgrad.format_version", "1"}});
///
/// add() keeps a handle to the tensor (shared storage, no copy): values are read when
/// write()/to_bytes() runs. Non-contiguous tensors are written in row-major order.
class SafetensorsWriter {
 public:
  using Sink = std::function<void(const void*, std::size_t)>;

  template <Element T> SafetensorsWriter& add(std::string name, const Tensor<T, Cpu>& t) {
    AVGRAD_CHECK(t.defined(), "save_safetensors", "tensor ", detail::quoted(name), " is undefined");
    AVGRAD_CHECK(name != "__metadata__", "save_safetensors", "\"__metadata__\" is reserved and cannot name a tensor");
    AVGRAD_CHECK(detail::json::is_valid_utf8(name), "save_safetensors", "tensor name is not valid UTF-8");
    AVGRAD_CHECK(!has(name), "save_safetensors", "tensor ", detail::quoted(name), " was added twice");
    static_assert(sizeof(bool) == 1, "BOOL is written as one byte per element");
    Item it;
    it.name = std::move(name);
    it.code = detail::stored_dtype_of<T>();
    it.shape = t.shape().vec();
    it.nbytes = static_cast<std::uint64_t>(t.numel()) * sizeof(T);
    Tensor<T, Cpu> h = t.detach();
    it.emit = [h](const Sink& sink) { emit_tensor(h, sink); };
    items_.push_back(std::move(it));
    return *this;
  }
  bool has(std::string_view name) const {
    return std::any_of(items_.begin(), items_.end(), [&](const Item& i) { return i.name == name; });
  }
  std::size_t size() const noexcept { return items_.size(); }

  /// The file image: length, padded header, data. `metadata` gains "format": "pt" unless it
  /// sets "format" itself.
  std::vector<std::uint8_t> to_bytes(const std::map<std::string, std::string>& metadata = {}) const {
    std::vector<std::uint8_t> out;
    write_to(metadata, [&](const void* p, std::size_t n) {
      const auto* b = static_cast<const std::uint8_t*>(p);
      out.insert(out.end(), b, b + n);
    });
    return out;
  }
  /// Writes the file atomically: `path` holds the old contents or the new, never a mix.
  void write(const std::filesystem::path& path, const std::map<std::string, std::string>& metadata = {}) const {
    AtomicFile f(path);
    write_to(metadata, [&](const void* p, std::size_t n) { f.write(p, n); });
    f.commit();
  }

 private:
  struct Item {
    std::string name;
    StoredDtype code;
    std::vector<std::int64_t> shape;
    std::uint64_t nbytes;
    std::function<void(const Sink&)> emit;
  };

  template <Element T> static void emit_tensor(const Tensor<T, Cpu>& t, const Sink& sink) {
    if (t.numel() == 0) return;
    if (t.is_contiguous() && std::endian::native == std::endian::little) {
      sink(t.data(), static_cast<std::size_t>(t.numel()) * sizeof(T));
      return;
    }
    // Gather row-major in bounded chunks: no full copy of a large strided tensor.
    constexpr std::size_t kChunk = std::size_t(1) << 16;
    std::vector<std::uint8_t> buf;
    buf.reserve(kChunk * sizeof(T));
    const T* base = t.data();
    for_each_offset(t.shape(), t.strides(), [&](std::int64_t off) {
      const std::size_t at = buf.size();
      buf.resize(at + sizeof(T));
      detail::store_le<T>(buf.data() + at, base[off]);
      if (buf.size() == kChunk * sizeof(T)) {
        sink(buf.data(), buf.size());
        buf.clear();
      }
    });
    if (!buf.empty()) sink(buf.data(), buf.size());
  }

  void write_to(const std::map<std::string, std::string>& metadata, const Sink& sink) const {
    std::map<std::string, std::string> meta = metadata;
    meta.emplace("format", "pt");  // no-op when the caller set "format"
    for (const auto& [k, v] : meta)
      AVGRAD_CHECK(detail::json::is_valid_utf8(k) && detail::json::is_valid_utf8(v), "save_safetensors",
                   "metadata key ", detail::quoted(k), " or its value is not valid UTF-8");

    // Data order: larger elements first, then by name, so every tensor starts at a multiple
    // of its element size (the data buffer itself starts 8-aligned).
    std::vector<const Item*> data_order;
    for (const Item& i : items_) data_order.push_back(&i);
    std::sort(data_order.begin(), data_order.end(), [](const Item* a, const Item* b) {
      const int sa = detail::stored_info(a->code).itemsize, sb = detail::stored_info(b->code).itemsize;
      return sa != sb ? sa > sb : a->name < b->name;
    });
    struct Placed {
      const Item* item;
      std::uint64_t begin, end;
    };
    std::map<std::string_view, Placed> placed;  // by name: the header's order
    std::uint64_t cursor = 0;
    for (const Item* i : data_order) {
      placed.emplace(i->name, Placed{i, cursor, cursor + i->nbytes});
      cursor += i->nbytes;
    }

    std::string h = "{\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : meta) {
      if (!first) h += ',';
      first = false;
      detail::json::write_string(h, k);
      h += ':';
      detail::json::write_string(h, v);
    }
    h += '}';
    for (const auto& [name, p] : placed) {
      const Item* it = p.item;
      h += ',';
      detail::json::write_string(h, name);
      h += ":{\"dtype\":\"";
      h += detail::stored_info(it->code).name;
      h += "\",\"shape\":[";
      h += detail::json_shape(it->shape);
      h += "],\"data_offsets\":[";
      h += std::to_string(p.begin);
      h += ',';
      h += std::to_string(p.end);
      h += "]}";
    }
    h += '}';
    h.append((8 - h.size() % 8) % 8, ' ');

    std::uint8_t len[8];
    detail::store_le<std::uint64_t>(len, h.size());
    sink(len, 8);
    sink(h.data(), h.size());
    for (const Item* i : data_order) i->emit(sink);
  }

  std::vector<Item> items_;
};

/// Writes tensors of one element type (see SafetensorsWriter for several types).
template <Element T> void save_safetensors(const std::filesystem::path& path,
                                           const std::map<std::string, Tensor<T, Cpu>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {}) {
  SafetensorsWriter w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  w.write(path, metadata);
}

/// Reads every tensor of a file as T (each converted as SafetensorsFile::get<T> does).
template <Element T> std::map<std::string, Tensor<T, Cpu>> load_safetensors(const std::filesystem::path& path) {
  const auto f = SafetensorsFile::open(path);
  std::map<std::string, Tensor<T, Cpu>> out;
  for (const auto& n : f.names()) out.emplace(n, f.get<T>(n));
  return out;
}

}  // namespace avgrad
