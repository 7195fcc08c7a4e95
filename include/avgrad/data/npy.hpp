// NumPy .npy and .npz files: one array per .npy, a stored (uncompressed) ZIP of .npy members
// per .npz, so arrays move between avgrad and NumPy without a conversion step.
//
// .npy: "\x93NUMPY", version (1.0 written; 1.0, 2.0 and 3.0 read), header length (u16 or u32
// LE), a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded
// with spaces and '\n' so the data starts at a multiple of 64 bytes, then the data in C order.
// Written descriptors: '<f4' '<f8' '<i4' '<i8' '|b1' '|u1'. Read: those plus '<f2' (→ float),
// '|i1' '<i2' '<u2' '<u4' '<u8' (→ int32/int64 with a range check), with the conversion rules of
// SafetensorsFile::get. Big-endian, Fortran-order, object and structured arrays are rejected
// with a message saying how to convert them in NumPy.
//
// .npz: members "<name>.npy" in a ZIP archive using the stored method (numpy.savez). The ZIP
// reader uses the central directory (ZIP64 fields included, as numpy writes them), verifies
// each member's CRC-32 and rejects compressed members (numpy.savez_compressed) with a clear
// message. Every failure is an avgrad::Error naming the file (and the member).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
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

#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"
#include "avgrad/data/safetensors.hpp"

namespace avgrad {

/// What the header of a .npy image says.
struct NpyHeader {
  int major = 1, minor = 0;
  std::string descr;  ///< as written, e.g. "<f4"
  StoredDtype code = StoredDtype::F32;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::size_t data_offset = 0;  ///< where the array data starts in the image
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;  // checked not to overflow by the parser
    return n;
  }
};

namespace detail {

inline constexpr std::string_view kNpyMagic{"\x93NUMPY", 6};

template <Element T> constexpr std::string_view npy_descr() {
  if constexpr (std::same_as<T, float>)
    return "<f4";
  else if constexpr (std::same_as<T, double>)
    return "<f8";
  else if constexpr (std::same_as<T, std::int32_t>)
    return "<i4";
  else if constexpr (std::same_as<T, std::int64_t>)
    return "<i8";
  else if constexpr (std::same_as<T, bool>)
    return "|b1";
  else
    return "|u1";
}

/// The preamble (magic, version 1.0, header length, padded dict) of an array.
inline std::string npy_preamble(std::string_view descr, const Shape& shape) {
  std::string dict = concat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (");
  for (int i = 0; i < shape.rank(); ++i) dict += concat(i ? ", " : "", shape[i]);
  dict += shape.rank() == 1 ? ",), }" : "), }";
  // magic(6) + version(2) + length(2) + dict + padding + '\n' ≡ 0 (mod 64)
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::string out(kNpyMagic);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>((dict.size() >> 8) & 0xFF);
  return out + dict;
}

/// Appends the row-major little-endian bytes of t to out.
template <Element T> void append_le_bytes(std::vector<std::uint8_t>& out, const Tensor<T, Cpu>& t) {
  const std::size_t at = out.size();
  out.resize(at + static_cast<std::size_t>(t.numel()) * sizeof(T));
  std::uint8_t* p = out.data() + at;
  if (t.numel() == 0) return;
  if (t.is_contiguous() && std::endian::native == std::endian::little) {
    std::memcpy(p, t.data(), static_cast<std::size_t>(t.numel()) * sizeof(T));
    return;
  }
  const T* base = t.data();
  for_each_offset(t.shape(), t.strides(), [&](std::int64_t off) {
    store_le<T>(p, base[off]);
    p += sizeof(T);
  });
}

/// Parser of the header dict: a Python literal with exactly the keys 'descr' (a string),
/// 'fortran_order' (True/False) and 'shape' (a tuple of non-negative ints).
class NpyDictParser {
 public:
  NpyDictParser(std::string_view text, std::string_view op, const std::string& source)
      : s_(text), op_(op), source_(source) {}

  void parse(NpyHeader& h) {
    bool have_descr = false, have_order = false, have_shape = false;
    ws();
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = string_literal("a key");
      if ((key == "descr" && have_descr) || (key == "fortran_order" && have_order) || (key == "shape" && have_shape))
        fail(concat("duplicate key '", key, "'"));
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (peek() == '[') fail("structured dtypes (a field list in 'descr') are not supported");
        h.descr = string_literal("the 'descr' value");
        have_descr = true;
      } else if (key == "fortran_order") {
        if (s_.substr(pos_, 4) == "True")
          h.fortran_order = true, pos_ += 4;
        else if (s_.substr(pos_, 5) == "False")
          h.fortran_order = false, pos_ += 5;
        else
          fail("'fortran_order' is not True or False");
        have_order = true;
      } else if (key == "shape") {
        shape_tuple(h.shape);
        have_shape = true;
      } else {
        fail(concat("unexpected key '", key, "' (expected descr, fortran_order, shape)"));
      }
      ws();
      if (peek() == ',')
        ++pos_;
      else if (peek() != '}')
        fail("expected ',' or '}' in the header dict");
    }
    if (!have_descr || !have_order || !have_shape)
      fail("the header dict lacks one of 'descr', 'fortran_order', 'shape'");
    ws();  // padding: spaces, then '\n' (any whitespace is accepted, as numpy does)
    if (pos_ != s_.size()) fail("unexpected characters after the header dict");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(op_, concat(source_, ": invalid .npy header: ", what));
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c || pos_ >= s_.size()) fail(concat("expected '", c, "'"));
    ++pos_;
  }
  std::string string_literal(std::string_view what) {
    const char q = peek();
    if (pos_ >= s_.size() || (q != '\'' && q != '"')) fail(concat("expected a quoted string for ", what));
    ++pos_;
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\' || static_cast<unsigned char>(s_[pos_]) < 0x20) fail("unsupported character in a string");
      ++pos_;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    return std::string(s_.substr(start, pos_++ - start));
  }
  void shape_tuple(std::vector<std::int64_t>& shape) {
    expect('(');
    std::uint64_t extent_product = 1;
    for (;;) {
      ws();
      if (peek() == ')') {
        ++pos_;
        return;
      }
      if (peek() < '0' || peek() > '9') fail("'shape' must be a tuple of non-negative integers");
      std::uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const auto d = static_cast<std::uint64_t>(peek() - '0');
        if (v > (static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - d) / 10)
          fail("a 'shape' extent is out of the 64-bit range");
        v = v * 10 + d;
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      if (!mul_u64(extent_product, std::max<std::uint64_t>(v, 1), extent_product) ||
          extent_product > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail("the element count of 'shape' overflows 64 bits");
      if (shape.size() == static_cast<std::size_t>(kMaxRank))
        fail(concat("'shape' has more than ", kMaxRank, " dimensions, avgrad's maximum rank"));
      shape.push_back(static_cast<std::int64_t>(v));
      ws();
      if (peek() == ',')
        ++pos_;
      else if (peek() != ')')
        fail("expected ',' or ')' in 'shape'");
      // A one-element tuple needs its comma in Python, "(3)" is the int 3: accept it anyway.
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string_view op_;
  const std::string& source_;
};

/// Maps a numpy type descriptor to a stored dtype, or throws saying what to do instead.
inline StoredDtype npy_stored_dtype(const std::string& descr, std::string_view op, const std::string& source) {
  const auto fail = [&](const std::string& why) -> StoredDtype {
    throw Error(op, concat(source, ": dtype '", descr, "' ", why));
  };
  if (descr.size() < 3) return fail("is not supported");
  const char order = descr[0], kind = descr[1];
  const std::string_view digits = std::string_view(descr).substr(2);
  int size = 0;
  if (digits == "1")
    size = 1;
  else if (digits == "2")
    size = 2;
  else if (digits == "4")
    size = 4;
  else if (digits == "8")
    size = 8;
  if (order != '<' && order != '|' && order != '=' && order != '>') return fail("has no valid byte-order mark");
  if (kind == 'O') return fail("is an object array (pickled Python objects), which is not supported");
  if (size == 0) return fail("is not supported (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)");
  if (order == '>' && size > 1)
    return fail("is big-endian, which is not supported; convert with arr.astype(arr.dtype.newbyteorder('<'))");
  if (order == '=' && std::endian::native != std::endian::little)
    return fail("is native-endian on a big-endian host, which is not supported");
  switch (kind) {
    case 'f':
      if (size == 2) return StoredDtype::F16;
      if (size == 4) return StoredDtype::F32;
      if (size == 8) return StoredDtype::F64;
      break;
    case 'i':
      if (size == 1) return StoredDtype::I8;
      if (size == 2) return StoredDtype::I16;
      if (size == 4) return StoredDtype::I32;
      return StoredDtype::I64;
    case 'u':
      if (size == 1) return StoredDtype::U8;
      if (size == 2) return StoredDtype::U16;
      if (size == 4) return StoredDtype::U32;
      return StoredDtype::U64;
    case 'b':
      if (size == 1) return StoredDtype::BOOL;
      break;
    default:
      break;
  }
  return fail("is not supported (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)");
}

}  // namespace detail

/// Parses and checks the header of a .npy image: magic, version, dict, dtype, and that the
/// image holds all the data the shape needs (trailing bytes are ignored, as numpy does).
/// `source` names the image in errors.
inline NpyHeader read_npy_header(std::span<const std::uint8_t> bytes, const std::string& source,
                                 std::string_view op = "load_npy") {
  const std::size_t size = bytes.size();
  if (size < 10 || std::memcmp(bytes.data(), detail::kNpyMagic.data(), detail::kNpyMagic.size()) != 0)
    throw Error(op, detail::concat(source, ": not a .npy file (", size < 10 ? "too short" : "bad magic", ")"));
  NpyHeader h;
  h.major = bytes[6];
  h.minor = bytes[7];
  std::size_t header_len = 0, start = 0;
  if (h.major == 1) {
    header_len = detail::load_le<std::uint16_t>(bytes.data() + 8);
    start = 10;
  } else if (h.major == 2 || h.major == 3) {
    AVGRAD_CHECK(size >= 12, op, source, ": truncated .npy preamble");
    header_len = detail::load_le<std::uint32_t>(bytes.data() + 8);
    start = 12;
  } else {
    throw Error(op, detail::concat(source, ": unsupported .npy format version ", h.major, ".", h.minor));
  }
  AVGRAD_CHECK(header_len <= size - start, op, source, ": header length ", header_len, " exceeds the ", size - start,
               " bytes after the preamble (truncated?)");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + start), header_len);
  detail::NpyDictParser(text, op, source).parse(h);
  h.code = detail::npy_stored_dtype(h.descr, op, source);
  AVGRAD_CHECK(!h.fortran_order, op, source,
               ": fortran_order=True arrays are not supported; save np.ascontiguousarray(arr) instead");
  h.data_offset = start + header_len;
  std::uint64_t need = 0;
  const bool ok = detail::mul_u64(static_cast<std::uint64_t>(h.numel()),
                                  static_cast<std::uint64_t>(detail::stored_info(h.code).itemsize), need);
  AVGRAD_CHECK(ok && need <= size - h.data_offset, op, source, ": truncated data: shape ",
               detail::concat('(', detail::json_shape(h.shape), ')'), " of '", h.descr, "' needs ", need,
               " bytes, the file has ", size - h.data_offset);
  return h;
}

/// The array of a .npy image as Tensor<T, Cpu>, converted like SafetensorsFile::get<T>.
template <Element T> Tensor<T, Cpu> npy_from_bytes(std::span<const std::uint8_t> bytes,
                                                   const std::string& source = "<memory>",
                                                   std::string_view op = "load_npy") {
  const NpyHeader h = read_npy_header(bytes, source, op);
  AVGRAD_CHECK(detail::stored_convertible<T>(h.code), op, source, ": array stored as '", h.descr, "' (",
               detail::stored_info(h.code).name, ") cannot be read as ", dtype_name<T>(),
               " (conversions must keep the kind: floating, integer, bool/uint8)");
  auto t = Tensor<T, Cpu>::empty(Shape(h.shape));
  detail::convert_stored<T>(h.code, bytes.data() + h.data_offset, h.numel(), t.data(), op, source);
  return t;
}

/// The .npy image (version 1.0, C order) of a tensor; non-contiguous tensors are written in
/// row-major order.
template <Element T> std::vector<std::uint8_t> npy_to_bytes(const Tensor<T, Cpu>& t) {
  AVGRAD_CHECK(t.defined(), "save_npy", "tensor is undefined");
  const std::string pre = detail::npy_preamble(detail::npy_descr<T>(), t.shape());
  std::vector<std::uint8_t> out(pre.begin(), pre.end());
  out.reserve(pre.size() + static_cast<std::size_t>(t.numel()) * sizeof(T));
  detail::append_le_bytes(out, t);
  return out;
}

/// Writes a .npy file atomically.
template <Element T> void save_npy(const std::filesystem::path& path, const Tensor<T, Cpu>& t) {
  const auto bytes = npy_to_bytes(t);
  write_file_atomic(path, bytes.data(), bytes.size());
}

/// Reads a .npy file as T; throws avgrad::Error naming the path on any defect.
template <Element T> Tensor<T, Cpu> load_npy(const std::filesystem::path& path) {
  const auto bytes = read_file_bytes(path, "load_npy");
  return npy_from_bytes<T>(bytes, path.string());
}

// ---- .npz: a stored ZIP of .npy members -----------------------------------------------------

namespace detail {

/// CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320), as ZIP uses.
inline std::uint32_t crc32(const std::uint8_t* p, std::size_t n, std::uint32_t crc = 0) {
  static constexpr auto kTable = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

inline void put_u16(std::vector<std::uint8_t>& o, std::uint32_t v) {
  o.push_back(static_cast<std::uint8_t>(v));
  o.push_back(static_cast<std::uint8_t>(v >> 8));
}
inline void put_u32(std::vector<std::uint8_t>& o, std::uint32_t v) {
  put_u16(o, v & 0xFFFF);
  put_u16(o, v >> 16);
}

inline constexpr std::uint32_t kZipLocal = 0x04034b50, kZipCentral = 0x02014b50, kZipEnd = 0x06054b50,
                               kZip64End = 0x06064b50, kZip64Locator = 0x07064b50;

}  // namespace detail

/// Collects named tensors and writes them as an uncompressed .npz (numpy.load reads it).
/// Like SafetensorsWriter, add() keeps a handle; values are read at write time.
class NpzWriter {
 public:
  using Sink = std::function<void(const void*, std::size_t)>;

  template <Element T> NpzWriter& add(std::string name, const Tensor<T, Cpu>& t) {
    AVGRAD_CHECK(t.defined(), "save_npz", "tensor ", detail::quoted(name), " is undefined");
    AVGRAD_CHECK(!name.empty() && detail::json::is_valid_utf8(name) && name.size() < 0xFF00, "save_npz",
                 "invalid member name ", detail::quoted(name));
    AVGRAD_CHECK(!has(name), "save_npz", "tensor ", detail::quoted(name), " was added twice");
    Tensor<T, Cpu> h = t.detach();
    items_.push_back({std::move(name), [h] { return npy_to_bytes(h); }});
    return *this;
  }
  bool has(std::string_view name) const {
    return std::any_of(items_.begin(), items_.end(), [&](const Item& i) { return i.name == name; });
  }

  std::vector<std::uint8_t> to_bytes() const {
    std::vector<std::uint8_t> out;
    write_to([&](const void* p, std::size_t n) {
      const auto* b = static_cast<const std::uint8_t*>(p);
      out.insert(out.end(), b, b + n);
    });
    return out;
  }
  /// Writes the archive atomically.
  void write(const std::filesystem::path& path) const {
    AtomicFile f(path);
    write_to([&](const void* p, std::size_t n) { f.write(p, n); });
    f.commit();
  }

 private:
  struct Item {
    std::string name;
    std::function<std::vector<std::uint8_t>()> npy;
  };

  void write_to(const Sink& sink) const {
    AVGRAD_CHECK(items_.size() < 0xFFFF, "save_npz", "more than 65534 members need ZIP64, which is not written");
    std::vector<std::uint8_t> central;
    std::uint64_t offset = 0;
    for (const Item& it : items_) {
      const std::vector<std::uint8_t> data = it.npy();  // one member in memory at a time
      const std::string fname = it.name + ".npy";
      AVGRAD_CHECK(data.size() < 0xFFFFFFFFull && offset < 0xFFFFFFFFull, "save_npz", "member ", detail::quoted(fname),
                   " ends beyond 4 GiB, which needs ZIP64 (not written)");
      const std::uint32_t crc = detail::crc32(data.data(), data.size());
      const bool ascii =
          std::all_of(fname.begin(), fname.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
      const std::uint32_t flags = ascii ? 0 : 0x800;  // bit 11: the name is UTF-8
      const auto size32 = static_cast<std::uint32_t>(data.size());
      // DOS date 1980-01-01 00:00: files are reproducible byte for byte.
      const std::uint32_t dos_time = 0, dos_date = (0u << 9) | (1u << 5) | 1u;

      std::vector<std::uint8_t> local;
      detail::put_u32(local, detail::kZipLocal);
      detail::put_u16(local, 20);  // version needed: 2.0
      detail::put_u16(local, flags);
      detail::put_u16(local, 0);  // method: stored
      detail::put_u16(local, dos_time);
      detail::put_u16(local, dos_date);
      detail::put_u32(local, crc);
      detail::put_u32(local, size32);
      detail::put_u32(local, size32);
      detail::put_u16(local, static_cast<std::uint32_t>(fname.size()));
      detail::put_u16(local, 0);  // extra length
      local.insert(local.end(), fname.begin(), fname.end());

      detail::put_u32(central, detail::kZipCentral);
      detail::put_u16(central, 20);  // version made by
      detail::put_u16(central, 20);  // version needed
      detail::put_u16(central, flags);
      detail::put_u16(central, 0);
      detail::put_u16(central, dos_time);
      detail::put_u16(central, dos_date);
      detail::put_u32(central, crc);
      detail::put_u32(central, size32);
      detail::put_u32(central, size32);
      detail::put_u16(central, static_cast<std::uint32_t>(fname.size()));
      detail::put_u16(central, 0);  // extra
      detail::put_u16(central, 0);  // comment
      detail::put_u16(central, 0);  // disk
      detail::put_u16(central, 0);  // internal attributes
      detail::put_u32(central, 0);  // external attributes
      detail::put_u32(central, static_cast<std::uint32_t>(offset));
      central.insert(central.end(), fname.begin(), fname.end());

      sink(local.data(), local.size());
      sink(data.data(), data.size());
      offset += local.size() + data.size();
    }
    AVGRAD_CHECK(offset + central.size() < 0xFFFFFFFFull, "save_npz", "archive beyond 4 GiB needs ZIP64 (not written)");
    std::vector<std::uint8_t> end;
    detail::put_u32(end, detail::kZipEnd);
    detail::put_u16(end, 0);
    detail::put_u16(end, 0);
    detail::put_u16(end, static_cast<std::uint32_t>(items_.size()));
    detail::put_u16(end, static_cast<std::uint32_t>(items_.size()));
    detail::put_u32(end, static_cast<std::uint32_t>(central.size()));
    detail::put_u32(end, static_cast<std::uint32_t>(offset));
    detail::put_u16(end, 0);  // comment length
    sink(central.data(), central.size());
    sink(end.data(), end.size());
  }

  std::vector<Item> items_;
};

/// Writes tensors of one element type as an uncompressed .npz.
template <Element T>
void save_npz(const std::filesystem::path& path, const std::map<std::string, Tensor<T, Cpu>>& tensors) {
  NpzWriter w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  w.write(path);
}

/// A validated .npz archive held in memory: every "<name>.npy" member's header is checked
/// and its CRC-32 verified when the archive is opened; other members are ignored.
class NpzFile {
 public:
  static NpzFile open(const std::filesystem::path& path) {
    return from_bytes(read_file_bytes(path, "load_npz"), path.string());
  }
  static NpzFile from_bytes(std::vector<std::uint8_t> bytes, std::string source = "<memory>") {
    NpzFile f;
    f.source_ = std::move(source);
    f.bytes_ = std::move(bytes);
    f.parse();
    return f;
  }

  const std::string& source() const noexcept { return source_; }
  /// Array names (member names without ".npy"), sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : members_) out.push_back(k);
    return out;
  }
  std::size_t size() const noexcept { return members_.size(); }
  bool has(std::string_view name) const { return members_.find(name) != members_.end(); }
  const NpyHeader& header(std::string_view name) const { return member(name).header; }
  Shape shape(std::string_view name) const { return Shape(member(name).header.shape); }
  /// The numpy descriptor, e.g. "<f4".
  const std::string& descr(std::string_view name) const { return member(name).header.descr; }

  template <Element T> Tensor<T, Cpu> get(std::string_view name) const {
    const Member& m = member(name);
    return npy_from_bytes<T>(std::span<const std::uint8_t>(bytes_.data() + m.offset, m.size), m.label, "load_npz");
  }

 private:
  struct Member {
    std::size_t offset = 0, size = 0;
    std::string label;  ///< "<file>: member \"x.npy\"", for messages
    NpyHeader header;
  };

  NpzFile() = default;
  [[noreturn]] void fail(const std::string& what) const { throw Error("load_npz", source_ + ": " + what); }

  const Member& member(std::string_view name) const {
    auto it = members_.find(name);
    if (it == members_.end())
      fail(detail::concat("no array named ", detail::quoted(name), " (the archive has ", members_.size(), ")"));
    return it->second;
  }

  std::uint64_t u16(std::uint64_t at) const { return detail::load_le<std::uint16_t>(bytes_.data() + at); }
  std::uint64_t u32(std::uint64_t at) const { return detail::load_le<std::uint32_t>(bytes_.data() + at); }
  std::uint64_t u64(std::uint64_t at) const { return detail::load_le<std::uint64_t>(bytes_.data() + at); }
  /// [at, at + n) lies inside the file (overflow-safe).
  bool fits(std::uint64_t at, std::uint64_t n) const { return at <= bytes_.size() && n <= bytes_.size() - at; }

  void parse() {
    const std::uint64_t size = bytes_.size();
    if (size >= 4 && u32(0) == detail::kZipLocal) {
      // fine: a ZIP archive
    } else if (size >= 6 && std::memcmp(bytes_.data(), detail::kNpyMagic.data(), 6) == 0) {
      fail("is a .npy file, not an .npz archive; use load_npy");
    } else if (size < 22) {
      fail(detail::concat("file is ", size, " bytes, too short for a ZIP archive"));
    }
    // End of central directory: the last signature within the final 64 KiB + 22 bytes.
    std::uint64_t eocd = size;
    if (size >= 22) {
      const std::uint64_t lowest = size > 22 + 0xFFFF ? size - 22 - 0xFFFF : 0;
      for (std::uint64_t p = size - 22 + 1; p-- > lowest;) {
        if (u32(p) == detail::kZipEnd && p + 22 + u16(p + 20) <= size) {
          eocd = p;
          break;
        }
      }
    }
    if (eocd == size) fail("no ZIP end-of-central-directory record (not an .npz, or truncated)");
    if (u16(eocd + 4) != 0 || u16(eocd + 6) != 0) fail("multi-disk ZIP archives are not supported");
    std::uint64_t entries = u16(eocd + 10), cd_size = u32(eocd + 12), cd_offset = u32(eocd + 16);
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      if (eocd < 20 || u32(eocd - 20) != detail::kZip64Locator) fail("ZIP64 end-of-central-directory locator missing");
      const std::uint64_t z = u64(eocd - 20 + 8);
      if (!fits(z, 56) || u32(z) != detail::kZip64End)
        fail("ZIP64 end-of-central-directory record missing or out of range");
      entries = u64(z + 32);
      cd_size = u64(z + 40);
      cd_offset = u64(z + 48);
    }
    if (!fits(cd_offset, cd_size)) fail("central directory lies outside the file (truncated?)");

    std::uint64_t p = cd_offset;
    const std::uint64_t cd_end = cd_offset + cd_size;
    for (std::uint64_t k = 0; k < entries; ++k) {
      if (p + 46 > cd_end || u32(p) != detail::kZipCentral)
        fail(detail::concat("central directory entry ", k, " is malformed"));
      const std::uint64_t flags = u16(p + 8), method = u16(p + 10), crc = u32(p + 16);
      std::uint64_t csize = u32(p + 20), usize = u32(p + 24), local = u32(p + 42);
      const std::uint64_t name_len = u16(p + 28), extra_len = u16(p + 30), comment_len = u16(p + 32);
      if (p + 46 + name_len + extra_len + comment_len > cd_end)
        fail(detail::concat("central directory entry ", k, " overruns the directory"));
      const std::string fname(reinterpret_cast<const char*>(bytes_.data() + p + 46), name_len);
      const std::string label = detail::concat(source_, ": member ", detail::quoted(fname));
      // ZIP64 extended information: the 64-bit values of the fields set to 0xFFFFFFFF, in order.
      for (std::uint64_t e = p + 46 + name_len, e_end = e + extra_len; e + 4 <= e_end;) {
        const std::uint64_t id = u16(e), len = u16(e + 2);
        if (e + 4 + len > e_end) throw Error("load_npz", label + ": malformed extra field");
        if (id == 0x0001) {
          std::uint64_t q = e + 4;
          const auto take = [&](std::uint64_t& field) {
            if (q + 8 > e + 4 + len) throw Error("load_npz", label + ": short ZIP64 extra field");
            field = u64(q);
            q += 8;
          };
          if (usize == 0xFFFFFFFF) take(usize);
          if (csize == 0xFFFFFFFF) take(csize);
          if (local == 0xFFFFFFFF) take(local);
        }
        e += 4 + len;
      }
      p += 46 + name_len + extra_len + comment_len;

      if (flags & 1) throw Error("load_npz", label + ": encrypted members are not supported");
      if (method == 8)
        throw Error("load_npz", label + ": compressed npz not supported; save with numpy.savez, not savez_compressed");
      if (method != 0)
        throw Error("load_npz", detail::concat(label, ": ZIP compression method ", method, " not supported"));
      if (csize != usize) throw Error("load_npz", label + ": stored member sizes disagree");
      if (fname.size() < 4 || fname.compare(fname.size() - 4, 4, ".npy") != 0) continue;  // not an array

      if (!fits(local, 30) || u32(local) != detail::kZipLocal)
        throw Error("load_npz", label + ": local header missing or out of range (truncated?)");
      const std::uint64_t data = local + 30 + u16(local + 26) + u16(local + 28);
      if (!fits(data, usize)) throw Error("load_npz", label + ": data runs past the end of the file (truncated?)");
      if (detail::crc32(bytes_.data() + data, usize) != crc)
        throw Error("load_npz", label + ": CRC-32 mismatch (corrupt file)");

      Member m;
      m.offset = static_cast<std::size_t>(data);
      m.size = static_cast<std::size_t>(usize);
      m.label = label;
      m.header = read_npy_header(std::span<const std::uint8_t>(bytes_.data() + m.offset, m.size), label, "load_npz");
      std::string key = fname.substr(0, fname.size() - 4);
      if (members_.find(key) != members_.end()) throw Error("load_npz", label + ": duplicate member");
      members_.emplace(std::move(key), std::move(m));
    }
  }

  std::string source_;
  std::vector<std::uint8_t> bytes_;
  std::map<std::string, Member, std::less<>> members_;
};

/// Reads every array of an .npz as T (converted like SafetensorsFile::get<T>).
template <Element T> std::map<std::string, Tensor<T, Cpu>> load_npz(const std::filesystem::path& path) {
  const auto f = NpzFile::open(path);
  std::map<std::string, Tensor<T, Cpu>> out;
  for (const auto& n : f.names()) out.emplace(n, f.get<T>(n));
  return out;
}

}  // namespace avgrad
