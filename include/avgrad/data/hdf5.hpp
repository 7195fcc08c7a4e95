// HDF5 datasets as CPU tensors: Hdf5File reads (whole datasets or row ranges), Hdf5Writer writes
// atomically, AudioSetFeatures serves the study's AudioSet feature files as a Dataset.
//
// Optional component: include only when linking avgrad::hdf5 (defines AVGRAD_WITH_HDF5). Nothing
// here is recorded for autograd and returned tensors never require grad.
//
// Error policy: every failure throws avgrad::Error whose message starts with the file path, names
// the dataset or group path when there is one, and says why (HDF5's own description when the
// library refused: the outermost and the innermost entry of its error stack). HDF5's automatic
// printing of error stacks to stderr is switched off on every thread that calls into this header.
// Missing, empty, non-regular, non-HDF5 and truncated files are refused before any dataset is read.
//
// Conversions on read (read<T>, read_rows<T>): the value must survive, or the read throws naming
// the row. float/double accept floating and integer datasets (float64 → float32 rounds; a finite
// value beyond the float32 range throws; NaN and ±inf pass through; integers above 2^24 / 2^53
// round). int32/int64/uint8 accept integer datasets in range and floating datasets whose values are
// integral and in range. bool accepts h5py's bool enum (int8 enum FALSE=0, TRUE=1) and integer or
// floating datasets holding only 0 and 1; bool datasets read as 0/1 into any type. Strings,
// compounds, other enums, references, variable-length and array types are refused.
//
// Threads: one Hdf5File / AudioSetFeatures may be used from several threads. When the HDF5 library
// is not built thread-safe (H5is_library_threadsafe), every call into it made here is serialised
// by one process-wide mutex; a thread-safe build serialises internally.
#pragma once

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"

namespace avgrad::data {

class AudioSetFeatures;

namespace detail {

using avgrad::detail::concat;

inline bool hdf5_threadsafe() {
  static const bool ts = [] {
    hbool_t t = 0;
    return H5is_library_threadsafe(&t) >= 0 && t;
  }();
  return ts;
}

inline std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex m;
  return m;
}

/// Held for the whole of every operation that calls HDF5: serialises the library when it is not
/// thread-safe (recursive, so handle destructors inside an operation may take it again), and
/// keeps a failed call and the reading of its error stack together. Also switches off the error
/// stack printing, which in a thread-safe build is a per-thread setting.
class H5Guard {
 public:
  H5Guard() {
    if (!hdf5_threadsafe()) lock_ = std::unique_lock<std::recursive_mutex>(hdf5_mutex());
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }

 private:
  std::unique_lock<std::recursive_mutex> lock_;
};

/// Owns one HDF5 identifier and closes it with the matching H5?close on every path out.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  H5Handle(H5Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      close_ = o.close_;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }
  hid_t get() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  /// Closes now and returns the close call's status (negative on failure); writers check it.
  herr_t close() noexcept {
    if (id_ < 0) return 0;
    H5Guard guard;
    return close_(std::exchange(id_, H5I_INVALID_HID));
  }

 private:
  void reset() noexcept {
    if (id_ >= 0) {
      H5Guard guard;
      close_(std::exchange(id_, H5I_INVALID_HID));
    }
  }
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

inline herr_t collect_error_desc(unsigned, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  if (e && e->desc && *e->desc) out->emplace_back(e->desc);
  return 0;
}

/// The current thread's HDF5 error stack as "outermost (innermost)", then cleared. The outer
/// entry says what failed ("unable to open file"), the inner one why ("truncated file: eof = ...").
inline std::string hdf5_error_text() {
  std::vector<std::string> descs;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error_desc, &descs);
  H5Eclear2(H5E_DEFAULT);
  if (descs.empty()) return "HDF5 reported a failure without a description";
  if (descs.size() == 1 || descs.front() == descs.back()) return descs.front();
  return descs.front() + " (" + descs.back() + ")";
}

/// "/a/b" for "a/b", "/a//b/" and "/a/b"; "/" for "" and "/". HDF5 resolves both forms from the
/// file, but messages and the e_<i> lookups need one spelling.
inline std::string normalize_path(std::string_view path) {
  std::string out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const std::size_t j = std::min(path.find('/', i), path.size());
    if (j > i) out += concat('/', path.substr(i, j - i));
    i = j;
  }
  return out.empty() ? "/" : out;
}

/// What a dataset's element type is, as far as the readers care.
struct H5TypeInfo {
  enum class Kind { floating, signed_int, unsigned_int, boolean, other } kind = Kind::other;
  std::size_t size = 0;
  std::string name;  ///< float32, int16, uint8, bool, string, compound, ...
};

/// h5py's bool: an enum on a 1-byte integer with exactly the members FALSE = 0 and TRUE = 1.
inline bool is_bool_enum(hid_t type) {
  if (H5Tget_nmembers(type) != 2) return false;
  H5Handle super(H5Tget_super(type), H5Tclose);
  if (!super.valid() || H5Tget_class(super.get()) != H5T_INTEGER || H5Tget_size(super.get()) != 1) return false;
  for (unsigned i = 0; i < 2; ++i) {
    char* name = H5Tget_member_name(type, i);
    if (!name) return false;
    const std::string n(name);
    H5free_memory(name);
    std::int8_t value = -1;
    if (H5Tget_member_value(type, i, &value) < 0) return false;
    if (!((n == "FALSE" && value == 0) || (n == "TRUE" && value == 1))) return false;
  }
  return true;
}

inline H5TypeInfo classify_type(hid_t type) {
  using K = H5TypeInfo::Kind;
  H5TypeInfo info;
  info.size = H5Tget_size(type);
  const std::string bits = std::to_string(info.size * 8);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      info.kind = K::floating;
      info.name = "float" + bits;
      break;
    case H5T_INTEGER:
      info.kind = H5Tget_sign(type) == H5T_SGN_NONE ? K::unsigned_int : K::signed_int;
      info.name = (info.kind == K::unsigned_int ? "uint" : "int") + bits;
      break;
    case H5T_ENUM:
      if (is_bool_enum(type)) {
        info.kind = K::boolean;
        info.name = "bool";
      } else {
        info.name = "enum";
      }
      break;
    case H5T_STRING:
      info.name = "string";
      break;
    case H5T_COMPOUND:
      info.name = "compound";
      break;
    case H5T_OPAQUE:
      info.name = "opaque";
      break;
    case H5T_BITFIELD:
      info.name = "bitfield";
      break;
    case H5T_REFERENCE:
      info.name = "reference";
      break;
    case H5T_VLEN:
      info.name = "vlen";
      break;
    case H5T_ARRAY:
      info.name = "array";
      break;
    case H5T_TIME:
      info.name = "time";
      break;
    default:
      info.name = "unknown";
  }
  H5Eclear2(H5E_DEFAULT);
  return info;
}

/// Where a read is reported from: the operation, the file and the dataset path.
struct ReadSite {
  std::string_view op;
  const std::string& file;
  const std::string& dataset;
  template <class... Args> [[noreturn]] void fail(Args&&... parts) const {
    throw Error(op, concat(file, ": dataset '", dataset, "': ", std::forward<Args>(parts)...));
  }
};

/// The dataset's extent; a null dataspace or a rank above kMaxRank cannot become a tensor.
inline Shape dataspace_shape(hid_t space, const ReadSite& site) {
  const H5S_class_t cls = H5Sget_simple_extent_type(space);
  if (cls == H5S_SCALAR) return Shape{};
  if (cls != H5S_SIMPLE) site.fail("has no data (null dataspace)");
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) site.fail("cannot read its extent: ", hdf5_error_text());
  if (rank > kMaxRank) site.fail("has rank ", rank, "; tensors hold at most ", kMaxRank, " dimensions");
  hsize_t dims[H5S_MAX_RANK] = {};
  if (H5Sget_simple_extent_dims(space, dims, nullptr) < 0) site.fail("cannot read its extent: ", hdf5_error_text());
  Shape s;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] > static_cast<hsize_t>(std::numeric_limits<std::int64_t>::max()))
      site.fail("dimension ", i, " has an impossible extent ", dims[i]);
    s.push_back(static_cast<std::int64_t>(dims[i]));
  }
  return s;
}

/// Physical memory in bytes (0 when unknown).
inline std::uint64_t physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
}

/// Number of elements of `s`, refused when reading them (`bytes_per_element` in memory, conversion
/// buffer included) could not fit in this machine's memory: a corrupt header can claim any extent,
/// and an allocation the kernel overcommits would be filled by HDF5 until the process is killed.
inline std::int64_t checked_numel(const Shape& s, std::size_t bytes_per_element, const ReadSite& site) {
  std::int64_t n = 1;
  const auto limit =
      std::numeric_limits<std::int64_t>::max() / static_cast<std::int64_t>(std::max<std::size_t>(bytes_per_element, 1));
  for (auto d : s) {
    if (d != 0 && n > limit / d) site.fail("shape ", s, " is too large to read into memory");
    n *= d;
  }
  const std::uint64_t bytes = static_cast<std::uint64_t>(n) * bytes_per_element, mem = physical_memory();
  if (mem > 0 && bytes > mem)
    site.fail("reading shape ", s, " needs ", bytes, " bytes, more than this machine's ", mem,
              " bytes of memory (a corrupt file, or read it with read_rows)");
  return n;
}

template <Element T> hid_t native_type() {
  if constexpr (std::same_as<T, float>)
    return H5T_NATIVE_FLOAT;
  else if constexpr (std::same_as<T, double>)
    return H5T_NATIVE_DOUBLE;
  else if constexpr (std::same_as<T, std::int32_t>)
    return H5T_NATIVE_INT32;
  else if constexpr (std::same_as<T, std::int64_t>)
    return H5T_NATIVE_INT64;
  else
    return H5T_NATIVE_UINT8;  // uint8; bool goes through the checked path
}

/// True when HDF5's own conversion from `src` to T cannot change a value, so the data may be read
/// straight into the tensor. Every other accepted pair goes through convert_value.
template <Element T> bool hdf5_converts_exactly(const H5TypeInfo& s) {
  using K = H5TypeInfo::Kind;
  const bool sint = s.kind == K::signed_int, uint = s.kind == K::unsigned_int, flt = s.kind == K::floating;
  if constexpr (std::same_as<T, double>)
    return (flt && s.size <= 8) || ((sint || uint) && s.size <= 4);
  else if constexpr (std::same_as<T, float>)
    return (flt && s.size <= 4) || ((sint || uint) && s.size <= 2);
  else if constexpr (std::same_as<T, std::int64_t>)
    return (sint && s.size <= 8) || (uint && s.size <= 4);
  else if constexpr (std::same_as<T, std::int32_t>)
    return (sint && s.size <= 4) || (uint && s.size <= 2);
  else if constexpr (std::same_as<T, std::uint8_t>)
    return uint && s.size == 1;
  else
    return false;
}

/// Stores v into out when it survives the conversion to T; false otherwise.
template <Element T, class S> bool convert_value(S v, T& out) {
  if constexpr (std::same_as<T, bool>) {
    if (v != S(0) && v != S(1)) return false;
    out = v == S(1);
  } else if constexpr (std::floating_point<T>) {
    if constexpr (std::floating_point<S> && sizeof(S) > sizeof(T))
      if (std::isfinite(v) && std::abs(v) > static_cast<S>(std::numeric_limits<T>::max())) return false;
    out = static_cast<T>(v);
  } else if constexpr (std::floating_point<S>) {
    // Both bounds are powers of two (or 0), so they are exact in double.
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
    constexpr double hi = std::is_signed_v<T> ? -static_cast<double>(std::numeric_limits<T>::min())
                                              : static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
    if (!std::isfinite(v) || v != std::trunc(v) || v < lo || v >= hi) return false;
    out = static_cast<T>(v);
  } else {
    if (!std::in_range<T>(v)) return false;
    out = static_cast<T>(v);
  }
  return true;
}

template <Element T, class S> std::string conversion_failure(S v) {
  if constexpr (std::same_as<T, bool>)
    return "is not 0 or 1";
  else if constexpr (std::floating_point<S> && !std::floating_point<T>)
    return (!std::isfinite(v) || v != std::trunc(v)) ? "is not an integer"
                                                     : concat("is outside the ", dtype_name<T>(), " range");
  else
    return concat("is outside the ", dtype_name<T>(), " range");
}

/// Reads the part of `fspace` selected (H5S_ALL: all of it) into a fresh tensor of `shape`, which
/// has as many elements as the selection. The selection covers `rows` rows of the dataset starting
/// at first_row; messages name the row of a value that does not convert.
template <Element T> Tensor<T, Cpu> read_selection(const ReadSite& site, hid_t dset, hid_t fspace, const Shape& shape,
                                                   std::int64_t first_row, std::int64_t rows) {
  using K = H5TypeInfo::Kind;
  H5Handle ftype(H5Dget_type(dset), H5Tclose);
  if (!ftype.valid()) site.fail("cannot read its type: ", hdf5_error_text());
  const H5TypeInfo src = classify_type(ftype.get());
  if (src.kind == K::other) site.fail("has element type ", src.name, ", which cannot be read as a tensor");
  if (src.size > 8 && src.kind != K::boolean) site.fail("has ", src.size, "-byte elements; at most 8 are supported");
  const std::int64_t n = checked_numel(shape, sizeof(T) + (hdf5_converts_exactly<T>(src) ? 0 : 8), site);
  Tensor<T, Cpu> out;
  try {
    out = Tensor<T, Cpu>::empty(shape);
  } catch (const std::bad_alloc&) {
    site.fail("cannot allocate ", n, " elements of ", dtype_name<T>(), " for shape ", shape);
  }
  if (n == 0) return out;

  H5Handle mspace;
  if (shape.rank() == 0) {
    mspace = H5Handle(H5Screate(H5S_SCALAR), H5Sclose);
  } else {
    const hsize_t count = static_cast<hsize_t>(n);
    mspace = H5Handle(H5Screate_simple(1, &count, nullptr), H5Sclose);
  }
  if (!mspace.valid()) site.fail("cannot create a memory dataspace: ", hdf5_error_text());
  auto read_into = [&](hid_t mtype, void* buf) {
    if (H5Dread(dset, mtype, mspace.get(), fspace, H5P_DEFAULT, buf) < 0) site.fail("read failed: ", hdf5_error_text());
  };
  if (hdf5_converts_exactly<T>(src)) {
    read_into(native_type<T>(), out.data());
    return out;
  }
  const std::int64_t row_numel = std::max<std::int64_t>(n / std::max<std::int64_t>(rows, 1), 1);
  auto convert_all = [&](const auto& buf) {
    T* o = out.data();
    for (std::int64_t k = 0; k < n; ++k) {
      const auto v = buf[static_cast<std::size_t>(k)];
      // Unary + prints 1-byte integers as numbers, not characters.
      if (src.kind == K::boolean && v != 0 && v != 1)
        site.fail("bool value ", +v, " at row ", first_row + k / row_numel, " is not 0 or 1");
      if (!convert_value<T>(v, o[k])) {
        if (shape.rank() == 0) site.fail("scalar value ", +v, " ", conversion_failure<T>(v));
        site.fail("value ", +v, " at row ", first_row + k / row_numel, " (element ", k % row_numel, " of the row) ",
                  conversion_failure<T>(v), "; the dataset is ", src.name);
      }
    }
  };
  auto buffer = [&]<class S>(std::vector<S>& buf) {
    try {
      buf.resize(static_cast<std::size_t>(n));
    } catch (const std::bad_alloc&) {
      site.fail("cannot allocate a ", n, "-element conversion buffer");
    }
  };
  switch (src.kind) {
    case K::floating: {
      std::vector<double> buf;
      buffer(buf);
      read_into(H5T_NATIVE_DOUBLE, buf.data());
      convert_all(buf);
      break;
    }
    case K::signed_int: {
      std::vector<std::int64_t> buf;
      buffer(buf);
      read_into(H5T_NATIVE_INT64, buf.data());
      convert_all(buf);
      break;
    }
    case K::unsigned_int: {
      std::vector<std::uint64_t> buf;
      buffer(buf);
      read_into(H5T_NATIVE_UINT64, buf.data());
      convert_all(buf);
      break;
    }
    case K::boolean: {
      // HDF5 converts enums only to enums: read the bytes through the native twin of the file's enum.
      H5Handle mtype(H5Tget_native_type(ftype.get(), H5T_DIR_ASCEND), H5Tclose);
      if (!mtype.valid()) site.fail("cannot map its bool type: ", hdf5_error_text());
      std::vector<std::int8_t> buf;
      buffer(buf);
      read_into(mtype.get(), buf.data());
      convert_all(buf);
      break;
    }
    case K::other:
      break;
  }
  return out;
}

/// Refuses chunked datasets whose chunk index is inconsistent in the rows [row_begin, row_end): HDF5
/// 1.10 trusts a chunk's recorded byte count and copies a whole chunk out of a shorter buffer when
/// the index was corrupted (found by overwriting bytes of test files). Each touched chunk is looked
/// up by coordinate; an unfiltered chunk must hold exactly one chunk of elements, any chunk must lie
/// inside the file. Compressed chunks are checked only for the latter: their decoded size is not
/// visible through the API. HDF5 1.10 answers a lookup by walking the whole chunk index, so only
/// reads touching at most kCheckedChunks chunks are checked (row reads, AudioSetFeatures::get);
/// larger reads rely on HDF5's own checks.
inline constexpr std::uint64_t kCheckedChunks = 16;
inline void check_chunks(const ReadSite& site, hid_t dset, const Shape& full, std::int64_t row_begin,
                         std::int64_t row_end) {
  if (full.rank() == 0 || row_end <= row_begin) return;
  // The selection must fit in memory before its chunks are walked: a corrupt extent would
  // otherwise mean billions of lookups. Each touched chunk holds at least one selected element.
  Shape selected = full;
  selected[0] = row_end - row_begin;
  if (checked_numel(selected, 1, site) == 0) return;
  H5Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
  if (!dcpl.valid()) site.fail("cannot read its storage layout: ", hdf5_error_text());
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) return;
  hsize_t chunk[H5S_MAX_RANK] = {};
  const int rank = H5Pget_chunk(dcpl.get(), H5S_MAX_RANK, chunk);
  if (rank != full.rank()) site.fail("has rank-", rank, " chunks for rank-", full.rank(), " data (corrupt layout)");
  H5Handle type(H5Dget_type(dset), H5Tclose);
  const std::size_t esize = type.valid() ? H5Tget_size(type.get()) : 0;
  if (esize == 0) site.fail("cannot read its type: ", hdf5_error_text());
  hsize_t chunk_bytes = esize;
  for (int i = 0; i < rank; ++i) {
    if (chunk[i] == 0 || chunk_bytes > std::numeric_limits<std::uint32_t>::max() / chunk[i])
      site.fail("has an impossible chunk shape (corrupt layout)");
    chunk_bytes *= chunk[i];
  }
  std::uint64_t touched =
      static_cast<std::uint64_t>(row_end - 1) / chunk[0] - static_cast<std::uint64_t>(row_begin) / chunk[0] + 1;
  for (int i = 1; i < rank && touched <= kCheckedChunks; ++i)
    touched *= (static_cast<std::uint64_t>(full[i]) + chunk[i] - 1) / chunk[i];
  if (touched > kCheckedChunks) return;
  const bool filtered = H5Pget_nfilters(dcpl.get()) != 0;
  H5Handle file(H5Iget_file_id(dset), H5Fclose);
  hsize_t file_size = 0;
  if (!file.valid() || H5Fget_filesize(file.get(), &file_size) < 0)
    site.fail("cannot read the file size: ", hdf5_error_text());
#if H5_VERSION_GE(1, 10, 5)
  // Odometer over the chunk grid: dim 0 over the chunks holding the rows, the others over all.
  hsize_t coord[H5S_MAX_RANK] = {};
  coord[0] = static_cast<hsize_t>(row_begin) / chunk[0] * chunk[0];
  for (;;) {
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(dset, coord, &mask, &addr, &size) < 0)
      site.fail("cannot look up the chunk at row ", coord[0], ": ", hdf5_error_text());
    if (addr != HADDR_UNDEF && (addr > file_size || size > file_size - addr || (!filtered && size != chunk_bytes)))
      site.fail("the chunk at row ", coord[0], " records ", size, " bytes at offset ", addr, " (expected ",
                filtered ? "a span inside the file" : concat(chunk_bytes, " bytes"), "; the file has ", file_size,
                " bytes): corrupt chunk index");
    int d = rank - 1;
    for (; d >= 0; --d) {
      coord[d] += chunk[d];
      const hsize_t end = d == 0 ? static_cast<hsize_t>(row_end) : static_cast<hsize_t>(full[d]);
      if (coord[d] < end) break;
      coord[d] = 0;
    }
    if (d < 0) break;
  }
#endif
}

/// Rows [start, start + count) of an open dataset as a tensor (count, dims[1:]...), or as `as`
/// when given (same number of elements, e.g. one row without its leading 1).
template <Element T> Tensor<T, Cpu> read_rows_of(const ReadSite& site, hid_t dset, std::int64_t start,
                                                 std::int64_t count, const Shape* as = nullptr) {
  H5Handle fspace(H5Dget_space(dset), H5Sclose);
  if (!fspace.valid()) site.fail("cannot read its dataspace: ", hdf5_error_text());
  const Shape full = dataspace_shape(fspace.get(), site);
  if (full.rank() == 0) site.fail("is a scalar; read_rows needs at least one dimension");
  if (start < 0 || count < 0 || start > full[0] || count > full[0] - start)
    site.fail("rows [", start, ", ", start, " + ", count, ") are outside its ", full[0], " rows (shape ", full, ")");
  Shape out = full;
  out[0] = count;
  if (count > 0) {
    hsize_t offset[H5S_MAX_RANK] = {}, extent[H5S_MAX_RANK] = {};
    for (int i = 0; i < full.rank(); ++i) extent[i] = static_cast<hsize_t>(out[i]);
    offset[0] = static_cast<hsize_t>(start);
    if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, offset, nullptr, extent, nullptr) < 0)
      site.fail("cannot select rows [", start, ", ", start + count, "): ", hdf5_error_text());
  }
  if (as && as->numel() != out.numel()) site.fail("rows have shape ", out, ", expected ", *as);
  check_chunks(site, dset, full, start, start + count);
  return read_selection<T>(site, dset, fspace.get(), as ? *as : out, start, count);
}

}  // namespace detail

/// An HDF5 file opened read-only. Copies share the open file; it closes with the last copy.
/// Paths are HDF5 paths from the root: "feat_a", "/feat_a" and "/e_0/feat_a" all work.
class Hdf5File {
 public:
  /// Opens `path` read-only. Throws avgrad::Error naming the path when it is missing, not a
  /// regular file, empty, not HDF5, or refused by HDF5 (truncated, corrupt superblock).
  static Hdf5File open(const std::filesystem::path& path) {
    constexpr std::string_view op = "Hdf5File::open";
    const std::string p = path.string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      throw Error(op, detail::concat(p, ": cannot open: ", avgrad::detail::errno_text(err)));
    }
    AVGRAD_CHECK(S_ISREG(st.st_mode), op, p, ": not a regular file");
    AVGRAD_CHECK(st.st_size > 0, op, p, ": empty file (0 bytes), not an HDF5 file");
    detail::H5Guard guard;
#if H5_VERSION_GE(1, 12, 0)
    const htri_t is_h5 = H5Fis_accessible(p.c_str(), H5P_DEFAULT);
#else
    const htri_t is_h5 = H5Fis_hdf5(p.c_str());
#endif
    if (is_h5 == 0) throw Error(op, detail::concat(p, ": not an HDF5 file (no HDF5 signature found)"));
    if (is_h5 < 0) throw Error(op, detail::concat(p, ": cannot open: ", detail::hdf5_error_text()));
    detail::H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (!fapl.valid()) throw Error(op, detail::concat(p, ": cannot open: ", detail::hdf5_error_text()));
#if H5_VERSION_GE(1, 10, 7)
    // Read-only opens take a shared lock; on file systems without locks (some NFS/Lustre mounts)
    // go on unlocked rather than fail, which is what readers of shared data sets need.
    H5Pset_file_locking(fapl.get(), true, true);
#endif
    detail::H5Handle file(H5Fopen(p.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
    if (!file.valid()) throw Error(op, detail::concat(p, ": cannot open: ", detail::hdf5_error_text()));
    Hdf5File out;
    out.path_ = p;
    out.file_ = std::make_shared<detail::H5Handle>(std::move(file));
    return out;
  }

  const std::string& path() const noexcept { return path_; }

  /// The link names in `group`, in HDF5's name order (byte-wise lexicographic: "e_10" < "e_2").
  std::vector<std::string> names(std::string_view group = "/") const {
    constexpr std::string_view op = "Hdf5File::names";
    detail::H5Guard guard;
    const std::string g = detail::normalize_path(group);
    detail::H5Handle obj = open_object(g, op, "group");
    if (H5Iget_type(obj.get()) != H5I_GROUP) throw Error(op, detail::concat(path_, ": '", g, "' is not a group"));
    std::vector<std::string> out;
    auto cb = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
      try {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      } catch (...) {
        return -1;
      }
    };
    if (H5Literate(obj.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, cb, &out) < 0)
      throw Error(op, detail::concat(path_, ": group '", g, "': cannot list its members: ", detail::hdf5_error_text()));
    return out;
  }

  /// Whether `path` names an existing object (group, dataset or named type). False for a dangling
  /// soft link and for paths through a missing group or through a dataset.
  bool has(std::string_view path) const {
    detail::H5Guard guard;
    return exists(detail::normalize_path(path));
  }
  bool is_group(std::string_view path) const { return object_type(path) == H5I_GROUP; }
  bool is_dataset(std::string_view path) const { return object_type(path) == H5I_DATASET; }

  /// The dataset's extent; () for a scalar.
  Shape shape(std::string_view path) const {
    detail::H5Guard guard;
    const std::string p = detail::normalize_path(path);
    detail::H5Handle d = open_dataset(p, "Hdf5File::shape");
    const detail::ReadSite site{"Hdf5File::shape", path_, p};
    detail::H5Handle space(H5Dget_space(d.get()), H5Sclose);
    if (!space.valid()) site.fail("cannot read its dataspace: ", detail::hdf5_error_text());
    return detail::dataspace_shape(space.get(), site);
  }

  /// The element type's name: float16/32/64, int8..int64, uint8..uint64, bool (h5py's enum), or
  /// the class of types that cannot be read (string, compound, enum, opaque, vlen, array, ...).
  std::string dtype(std::string_view path) const {
    detail::H5Guard guard;
    const std::string p = detail::normalize_path(path);
    detail::H5Handle d = open_dataset(p, "Hdf5File::dtype");
    detail::H5Handle t(H5Dget_type(d.get()), H5Tclose);
    if (!t.valid())
      throw Error("Hdf5File::dtype",
                  detail::concat(path_, ": dataset '", p, "': cannot read its type: ", detail::hdf5_error_text()));
    return detail::classify_type(t.get()).name;
  }

  /// Throws naming the dataset unless its shape matches `expected`, where -1 matches any extent.
  void check_shape(std::string_view path, const Shape& expected) const {
    const Shape s = shape(path);
    bool ok = s.rank() == expected.rank();
    for (int i = 0; ok && i < s.rank(); ++i) ok = expected[i] < 0 || expected[i] == s[i];
    if (!ok)
      throw Error("Hdf5File::check_shape", detail::concat(path_, ": dataset '", detail::normalize_path(path),
                                                          "' has shape ", s, ", expected ", shape_pattern(expected)));
  }

  /// The whole dataset as a contiguous tensor of its shape, converted to T (rules in the header).
  template <Element T> Tensor<T, Cpu> read(std::string_view path) const {
    detail::H5Guard guard;
    const std::string p = detail::normalize_path(path);
    detail::H5Handle d = open_dataset(p, "Hdf5File::read");
    const detail::ReadSite site{"Hdf5File::read", path_, p};
    detail::H5Handle space(H5Dget_space(d.get()), H5Sclose);
    if (!space.valid()) site.fail("cannot read its dataspace: ", detail::hdf5_error_text());
    const Shape s = detail::dataspace_shape(space.get(), site);
    detail::check_chunks(site, d.get(), s, 0, s.rank() == 0 ? 0 : s[0]);
    return detail::read_selection<T>(site, d.get(), H5S_ALL, s, 0, s.rank() == 0 ? 1 : s[0]);
  }
  /// read<T> after check_shape(path, expected).
  template <Element T> Tensor<T, Cpu> read(std::string_view path, const Shape& expected) const {
    check_shape(path, expected);
    return read<T>(path);
  }

  /// Rows [start, start + count) of the first dimension, shape (count, dims[1:]...): only those rows
  /// are read from disk. 0 <= start <= rows and count <= rows - start, else Error.
  template <Element T> Tensor<T, Cpu> read_rows(std::string_view path, std::int64_t start, std::int64_t count) const {
    detail::H5Guard guard;
    const std::string p = detail::normalize_path(path);
    detail::H5Handle d = open_dataset(p, "Hdf5File::read_rows");
    return detail::read_rows_of<T>({"Hdf5File::read_rows", path_, p}, d.get(), start, count);
  }

 private:
  friend class AudioSetFeatures;

  static std::string shape_pattern(const Shape& s) {
    std::string out = "(";
    for (int i = 0; i < s.rank(); ++i)
      out += detail::concat(i ? "," : "", s[i] < 0 ? std::string("*") : std::to_string(s[i]));
    return out + ")";
  }

  bool exists(const std::string& p) const {
    if (p == "/") return true;
    // H5Lexists needs every earlier component to exist, so walk the path one link at a time.
    std::string prefix;
    std::size_t i = 1;
    while (i <= p.size()) {
      const std::size_t j = std::min(p.find('/', i), p.size());
      prefix = p.substr(0, j);
      if (H5Lexists(file_->get(), prefix.c_str(), H5P_DEFAULT) <= 0 ||
          H5Oexists_by_name(file_->get(), prefix.c_str(), H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return false;
      }
      i = j + 1;
    }
    return true;
  }

  H5I_type_t object_type(std::string_view path) const {
    detail::H5Guard guard;
    const std::string p = detail::normalize_path(path);
    if (!exists(p)) return H5I_BADID;
    detail::H5Handle obj(H5Oopen(file_->get(), p.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid()) {
      H5Eclear2(H5E_DEFAULT);
      return H5I_BADID;
    }
    return H5Iget_type(obj.get());
  }

  detail::H5Handle open_object(const std::string& p, std::string_view op, std::string_view what) const {
    AVGRAD_CHECK(file_, op, "Hdf5File is not open");
    if (!exists(p)) throw Error(op, detail::concat(path_, ": no ", what, " '", p, "' in the file"));
    detail::H5Handle obj(H5Oopen(file_->get(), p.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid()) throw Error(op, detail::concat(path_, ": '", p, "': cannot open: ", detail::hdf5_error_text()));
    return obj;
  }

  detail::H5Handle open_dataset(const std::string& p, std::string_view op) const {
    detail::H5Handle obj = open_object(p, op, "dataset");
    if (H5Iget_type(obj.get()) != H5I_DATASET)
      throw Error(op, detail::concat(path_, ": '", p, "' is a ",
                                     H5Iget_type(obj.get()) == H5I_GROUP ? "group" : "named type", ", not a dataset"));
    return obj;
  }

  std::string path_;
  std::shared_ptr<detail::H5Handle> file_;
};

/// Layout options for one dataset written by Hdf5Writer.
struct Hdf5WriteOptions {
  /// > 0: chunked storage, this many rows of the first dimension per chunk (faster row reads of
  /// big files, and needed for compression). 0: contiguous storage.
  std::int64_t chunk_rows = 0;
  /// 1..9: gzip (deflate) level; needs chunk_rows > 0. 0: uncompressed.
  int deflate = 0;
};

/// Writes a new HDF5 file atomically: datasets go to a temp file beside `path` ("<path>.tmp.<pid>.<n>",
/// see AtomicFile), commit() closes it and renames it over `path`. Without commit() (an exception,
/// or destruction) the temp file is removed and `path` keeps its old contents. Element types are
/// little-endian IEEE/two's complement; bool is written as h5py's enum, so h5py reads numpy bool.
class Hdf5Writer {
 public:
  /// Throws avgrad::Error naming `path` when its directory is missing or not writable.
  explicit Hdf5Writer(const std::filesystem::path& path) : tmp_(path) {
    detail::H5Guard guard;
    detail::H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    // STRONG: closing the file also closes anything left open, so commit() never renames a file
    // HDF5 is still holding back data for.
    if (!fapl.valid() || H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0)
      fail("cannot set up the file", detail::hdf5_error_text());
    file_ = detail::H5Handle(H5Fcreate(tmp_.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file_.valid()) fail(detail::concat("cannot create '", tmp_.temp_path(), "'"), detail::hdf5_error_text());
  }
  Hdf5Writer(Hdf5Writer&&) = default;
  Hdf5Writer(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(Hdf5Writer&&) = delete;
  /// Closes and removes the temp file unless commit() ran (the HDF5 handle closes before the
  /// AtomicFile member removes the file: members are destroyed in reverse order).
  ~Hdf5Writer() = default;

  const std::filesystem::path& path() const noexcept { return tmp_.path(); }

  /// Creates dataset `name` (missing parent groups are created) holding t's values in row-major
  /// order with t's shape (rank 0 → scalar dataspace). Error if the name exists.
  template <Element T>
  void write(std::string_view name, const Tensor<T, Cpu>& t, const Hdf5WriteOptions& options = {}) {
    constexpr std::string_view op = "Hdf5Writer::write";
    const std::string p = detail::normalize_path(name);
    const std::string where = detail::concat(target(), ": dataset '", p, "': ");
    AVGRAD_CHECK(file_.valid(), op, where, "the writer was already committed");
    AVGRAD_CHECK(p != "/", op, target(), ": empty dataset name");
    AVGRAD_CHECK(t.defined(), op, where, "tensor is undefined");
    const Shape& s = t.shape();
    AVGRAD_CHECK(options.deflate >= 0 && options.deflate <= 9, op, where, "deflate level ", options.deflate,
                 " outside [0, 9]");
    AVGRAD_CHECK(options.chunk_rows >= 0, op, where, "negative chunk_rows ", options.chunk_rows);
    AVGRAD_CHECK(options.deflate == 0 || options.chunk_rows > 0, op, where, "deflate needs chunk_rows > 0");
    AVGRAD_CHECK(options.chunk_rows == 0 || s.rank() > 0, op, where, "a scalar cannot be chunked");
    for (int i = 1; options.chunk_rows > 0 && i < s.rank(); ++i)
      AVGRAD_CHECK(s[i] > 0, op, where, "cannot chunk shape ", s, ": HDF5 chunks need non-zero trailing dims");

    // Row-major bytes: bool as the enum's int8 values, non-contiguous views gathered.
    using Stored = std::conditional_t<std::same_as<T, bool>, std::int8_t, T>;
    std::vector<Stored> gathered;
    const void* data = t.numel() > 0 ? static_cast<const void*>(t.data()) : nullptr;
    if (t.numel() > 0 && (std::same_as<T, bool> || !t.is_contiguous())) {
      gathered.reserve(static_cast<std::size_t>(t.numel()));
      const T* base = t.data();
      for_each_offset(s, t.strides(), [&](std::int64_t off) { gathered.push_back(static_cast<Stored>(base[off])); });
      data = gathered.data();
    }

    detail::H5Guard guard;
    detail::H5Handle ftype = file_type<T>(), mtype = memory_type<T>();
    if (!ftype.valid() || !mtype.valid()) fail_at(p, "cannot create the element type", detail::hdf5_error_text());
    detail::H5Handle space;
    std::vector<hsize_t> dims(s.begin(), s.end());
    if (s.rank() == 0)
      space = detail::H5Handle(H5Screate(H5S_SCALAR), H5Sclose);
    else
      space = detail::H5Handle(H5Screate_simple(s.rank(), dims.data(), nullptr), H5Sclose);
    detail::H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    detail::H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    // No object timestamps: the same tensors give the same bytes (reproducible files and tests).
    if (!space.valid() || !lcpl.valid() || !dcpl.valid() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0 ||
        H5Pset_obj_track_times(dcpl.get(), false) < 0)
      fail_at(p, "cannot set up the dataset", detail::hdf5_error_text());
    if (options.chunk_rows > 0) {
      std::vector<hsize_t> chunk = dims;
      chunk[0] = static_cast<hsize_t>(std::clamp<std::int64_t>(options.chunk_rows, 1, std::max<std::int64_t>(s[0], 1)));
      if (H5Pset_chunk(dcpl.get(), s.rank(), chunk.data()) < 0 ||
          (options.deflate > 0 && H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.deflate)) < 0))
        fail_at(p, "cannot set chunking/compression", detail::hdf5_error_text());
    }
    detail::H5Handle dset(
        H5Dcreate2(file_.get(), p.c_str(), ftype.get(), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT), H5Dclose);
    if (!dset.valid()) fail_at(p, "cannot create the dataset", detail::hdf5_error_text());
    if (data && H5Dwrite(dset.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
      const std::string why = detail::hdf5_error_text();
      // Unlink the half-written dataset so that a later commit() cannot publish it.
      dset.close();
      if (H5Ldelete(file_.get(), p.c_str(), H5P_DEFAULT) < 0) poison();
      fail_at(p, "write failed", why);
    }
    if (dset.close() < 0) {
      poison();
      fail_at(p, "close failed", detail::hdf5_error_text());
    }
  }

  /// Creates an (empty) group, parents included. Error if the name exists.
  void create_group(std::string_view name) {
    constexpr std::string_view op = "Hdf5Writer::create_group";
    const std::string p = detail::normalize_path(name);
    AVGRAD_CHECK(file_.valid(), op, target(), ": group '", p, "': the writer was already committed");
    AVGRAD_CHECK(p != "/", op, target(), ": empty group name");
    detail::H5Guard guard;
    detail::H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    if (!lcpl.valid() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0)
      fail_at(p, "cannot set up the group", detail::hdf5_error_text(), "group");
    detail::H5Handle g(H5Gcreate2(file_.get(), p.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.valid()) fail_at(p, "cannot create the group", detail::hdf5_error_text(), "group");
  }

  /// Flushes and closes the HDF5 file, then publishes it at path() (fsync, rename, fsync of the
  /// directory). After this the writer accepts nothing more.
  void commit() {
    constexpr std::string_view op = "Hdf5Writer::commit";
    AVGRAD_CHECK(file_.valid(), op, target(), ": commit after commit");
    if (poisoned_) {
      file_.close();
      tmp_.abandon();
      throw Error(op,
                  detail::concat(target(), ": an earlier write failed and could not be undone; nothing was written"));
    }
    {
      detail::H5Guard guard;
      if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0 || file_.close() < 0) {
        const std::string why = detail::hdf5_error_text();
        file_.close();
        tmp_.abandon();
        throw Error(op, detail::concat(target(), ": cannot finish the HDF5 file: ", why));
      }
    }
    tmp_.commit();
  }

 private:
  template <Element T> static detail::H5Handle file_type() {
    if constexpr (std::same_as<T, bool>) return bool_enum(H5T_STD_I8LE);
    hid_t base = H5T_STD_U8LE;
    if constexpr (std::same_as<T, float>) base = H5T_IEEE_F32LE;
    if constexpr (std::same_as<T, double>) base = H5T_IEEE_F64LE;
    if constexpr (std::same_as<T, std::int32_t>) base = H5T_STD_I32LE;
    if constexpr (std::same_as<T, std::int64_t>) base = H5T_STD_I64LE;
    return detail::H5Handle(H5Tcopy(base), H5Tclose);
  }
  template <Element T> static detail::H5Handle memory_type() {
    if constexpr (std::same_as<T, bool>)
      return bool_enum(H5T_NATIVE_INT8);
    else
      return detail::H5Handle(H5Tcopy(detail::native_type<T>()), H5Tclose);
  }
  /// h5py's bool: enum {FALSE = 0, TRUE = 1} over a 1-byte integer.
  static detail::H5Handle bool_enum(hid_t base) {
    detail::H5Handle t(H5Tenum_create(base), H5Tclose);
    const std::int8_t no = 0, yes = 1;
    if (t.valid() && (H5Tenum_insert(t.get(), "FALSE", &no) < 0 || H5Tenum_insert(t.get(), "TRUE", &yes) < 0))
      return {};
    return t;
  }
  std::string target() const { return tmp_.path().string(); }
  void poison() noexcept { poisoned_ = true; }
  [[noreturn]] void fail(const std::string& what, const std::string& why) {
    throw Error("Hdf5Writer", detail::concat(target(), ": ", what, ": ", why));
  }
  [[noreturn]] void fail_at(const std::string& p, const std::string& what, const std::string& why,
                            std::string_view kind = "dataset") {
    throw Error(kind == "group" ? "Hdf5Writer::create_group" : "Hdf5Writer::write",
                detail::concat(target(), ": ", kind, " '", p, "': ", what, ": ", why));
  }

  AtomicFile tmp_;
  detail::H5Handle file_;
  bool poisoned_ = false;
};

/// One AudioSet clip's features. audio (T=400, F=64) log-mel, z-scored; video (10, D=2048) frame
/// embeddings at 1 fps; labels (K=527) multi-hot in {0, 1}.
struct AudioSetSample {
  Tensor<float, Cpu> audio;   // (400, 64)
  Tensor<float, Cpu> video;   // (10, 2048)
  Tensor<float, Cpu> labels;  // (527)
};

/// A batch of B samples stacked on a new leading axis.
struct AudioSetBatch {
  Tensor<float, Cpu> audio;   // (B, 400, 64)
  Tensor<float, Cpu> video;   // (B, 10, 2048)
  Tensor<float, Cpu> labels;  // (B, 527)
};

/// The study's AudioSet feature files as a Dataset (size / get / collate). Two layouts:
///  - flat: datasets /feat_a (N, 400, 64), /feat_v (N, 10, 2048), /labels (N, 527) at the root;
///  - pre-batched: groups /e_0, /e_1, ..., /e_<K-1>, each holding feat_a (n_k, 400, 64),
///    feat_v (n_k, 10, 2048), labels (n_k, 527); sample i is row i - (n_0 + ... + n_{k-1}) of
///    the group e_k it falls in, so samples keep the e_0, e_1, ... order (numeric, not "e_10" <
///    "e_2"). Keys must run from e_0 without gaps; other root members are ignored. An e_<i> that
///    is a dataset rather than a group, or a file with both layouts, is an Error.
/// feat_a/feat_v must be floating (float64 is converted to float); labels may be floating, integer
/// or bool. open() checks every shape; get() checks the rows it reads: a NaN or ±inf feature, or a
/// label outside {0, 1}, throws naming the file, dataset and row. get() may be called from several
/// threads at once; copies share the open file.
class AudioSetFeatures {
 public:
  using sample_type = AudioSetSample;
  using batch_type = AudioSetBatch;
  static constexpr std::int64_t kAudioFrames = 400, kMelBins = 64, kVideoFrames = 10, kVideoDim = 2048, kClasses = 527;
  enum class Layout { flat, batched };

  /// Opens and validates `path` (see the class comment); Error naming the file and the offending
  /// dataset with the expected shape.
  static AudioSetFeatures open(const std::filesystem::path& path) {
    constexpr std::string_view op = "AudioSetFeatures::open";
    auto st = std::make_shared<State>();
    st->file = Hdf5File::open(path);
    const std::string& fp = st->file.path();
    detail::H5Guard guard;
    std::vector<std::int64_t> keys;
    bool flat = false;
    for (const std::string& n : st->file.names("/")) {
      if (n == "feat_a" || n == "feat_v" || n == "labels") flat = true;
      if (const std::int64_t k = batch_key(n); k >= 0) keys.push_back(k);
    }
    AVGRAD_CHECK(!(flat && !keys.empty()), op, fp,
                 ": has both root datasets feat_a/feat_v/labels and pre-batched groups e_<i>; expected one layout");
    AVGRAD_CHECK(
        flat || !keys.empty(), op, fp,
        ": no AudioSet features: expected datasets feat_a, feat_v, labels at the root or groups e_0, e_1, ...");
    std::vector<std::string> groups;
    if (flat) {
      st->layout = Layout::flat;
      groups.emplace_back("");
    } else {
      st->layout = Layout::batched;
      std::sort(keys.begin(), keys.end());
      for (std::size_t k = 0; k < keys.size(); ++k) {
        AVGRAD_CHECK(keys[k] == static_cast<std::int64_t>(k), op, fp, ": pre-batched key e_", k,
                     " is missing (keys must run e_0 .. e_", keys.back(), " without gaps)");
        const std::string g = detail::concat("/e_", k);
        AVGRAD_CHECK(st->file.is_group(g), op, fp, ": '", g,
                     "' is a dataset; the pre-batched layout needs a group e_<i> holding feat_a, feat_v and labels");
        groups.push_back(g);
      }
    }
    for (const std::string& g : groups) {
      Part part;
      part.group = g.empty() ? "/" : g;
      part.first = st->total;
      std::int64_t rows = -1;
      std::string rows_from;
      auto take = [&](std::string name, std::initializer_list<std::int64_t> tail, bool features) {
        const std::string p = detail::concat(g, "/", name);
        AVGRAD_CHECK(st->file.is_dataset(p), op, fp, ": missing dataset '", p, "'",
                     st->file.has(p) ? " (it is a group)" : "");
        const Shape s = st->file.shape(p);
        bool ok = s.rank() == static_cast<int>(tail.size()) + 1;
        std::string expected = "(N";
        for (int i = 0; const std::int64_t d : tail) {
          expected += detail::concat(",", d);
          ok = ok && s[++i] == d;
        }
        AVGRAD_CHECK(ok, op, fp, ": dataset '", p, "' has shape ", s, ", expected ", expected, ")");
        if (rows < 0) {
          rows = s[0];
          rows_from = p;
        }
        AVGRAD_CHECK(s[0] == rows, op, fp, ": dataset '", p, "' has ", s[0], " rows but '", rows_from, "' has ", rows);
        const std::string dt = st->file.dtype(p);
        const bool floating = dt.starts_with("float");
        const bool numeric = floating || dt.starts_with("int") || dt.starts_with("uint") || dt == "bool";
        AVGRAD_CHECK(features ? floating : numeric, op, fp, ": dataset '", p, "' has element type ", dt, ", expected ",
                     features ? "float32 or float64" : "a floating, integer or bool type");
        return st->file.open_dataset(p, op);
      };
      part.audio = take("feat_a", {kAudioFrames, kMelBins}, true);
      part.video = take("feat_v", {kVideoFrames, kVideoDim}, true);
      part.labels = take("labels", {kClasses}, false);
      part.rows = rows;
      st->total += rows;
      st->parts.push_back(std::move(part));
    }
    AudioSetFeatures out;
    out.state_ = std::move(st);
    return out;
  }

  const std::string& path() const { return state().file.path(); }
  Layout layout() const { return state().layout; }
  /// Groups e_<i> for the pre-batched layout; 1 for the flat one.
  std::int64_t num_batches() const { return static_cast<std::int64_t>(state().parts.size()); }
  std::int64_t size() const { return state().total; }

  /// Sample i in [0, size()): reads one row of each dataset (a hyperslab, not the whole dataset).
  sample_type get(std::int64_t i) const {
    constexpr std::string_view op = "AudioSetFeatures::get";
    const State& st = state();
    AVGRAD_CHECK(i >= 0 && i < st.total, op, st.file.path(), ": index ", i, " outside [0, ", st.total, ")");
    const auto it = std::upper_bound(st.parts.begin(), st.parts.end(), i,
                                     [](std::int64_t v, const Part& p) { return v < p.first; }) -
                    1;
    const std::int64_t row = i - it->first;
    detail::H5Guard guard;
    sample_type s;
    s.audio = read_row(*it, "feat_a", it->audio, row, Shape{kAudioFrames, kMelBins});
    s.video = read_row(*it, "feat_v", it->video, row, Shape{kVideoFrames, kVideoDim});
    s.labels = read_row(*it, "labels", it->labels, row, Shape{kClasses});
    check_finite(*it, "feat_a", row, i, s.audio);
    check_finite(*it, "feat_v", row, i, s.video);
    const float* l = s.labels.data();
    for (std::int64_t k = 0; k < kClasses; ++k)
      if (l[k] != 0.0f && l[k] != 1.0f)
        throw Error(
            op, detail::concat(st.file.path(), ": dataset '", dataset_path(*it, "labels"), "': row ", row, " (sample ",
                               i, ") has label value ", l[k], " for class ", k, "; labels must be 0 or 1"));
    return s;
  }

  /// Stacks samples on a new leading axis B = samples.size() >= 1; every sample must have the shapes
  /// get() returns.
  static batch_type collate(std::vector<sample_type>&& samples) {
    constexpr std::string_view op = "AudioSetFeatures::collate";
    AVGRAD_CHECK(!samples.empty(), op, "empty batch");
    const auto b = static_cast<std::int64_t>(samples.size());
    batch_type out{Tensor<float, Cpu>::empty(Shape{b, kAudioFrames, kMelBins}),
                   Tensor<float, Cpu>::empty(Shape{b, kVideoFrames, kVideoDim}),
                   Tensor<float, Cpu>::empty(Shape{b, kClasses})};
    auto copy = [&](const Tensor<float, Cpu>& t, Tensor<float, Cpu>& dst, std::int64_t k, const Shape& want,
                    std::string_view what) {
      AVGRAD_CHECK(t.defined() && t.shape() == want, op, "sample ", k, ": ", what, " has shape ",
                   t.defined() ? t.shape().str() : std::string("(undefined)"), ", expected ", want);
      float* o = dst.data() + k * want.numel();
      const float* base = t.data();
      if (t.is_contiguous())
        std::copy(base, base + want.numel(), o);
      else
        for_each_offset(t.shape(), t.strides(), [&](std::int64_t off) { *o++ = base[off]; });
    };
    for (std::int64_t k = 0; k < b; ++k) {
      const sample_type& s = samples[static_cast<std::size_t>(k)];
      copy(s.audio, out.audio, k, Shape{kAudioFrames, kMelBins}, "audio");
      copy(s.video, out.video, k, Shape{kVideoFrames, kVideoDim}, "video");
      copy(s.labels, out.labels, k, Shape{kClasses}, "labels");
    }
    samples.clear();
    return out;
  }

 private:
  struct Part {
    std::string group;  // "/" or "/e_<k>"
    std::int64_t first = 0, rows = 0;
    detail::H5Handle audio, video, labels;
  };
  struct State {
    Hdf5File file;
    Layout layout = Layout::flat;
    std::vector<Part> parts;
    std::int64_t total = 0;
  };

  /// k for a canonical "e_<k>" (decimal, no sign, no leading zeros), else -1.
  static std::int64_t batch_key(std::string_view name) {
    if (!name.starts_with("e_") || name.size() < 3) return -1;
    const std::string_view digits = name.substr(2);
    if (digits.size() > 1 && digits[0] == '0') return -1;
    std::int64_t k = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
    return ec == std::errc() && end == digits.data() + digits.size() && k >= 0 ? k : -1;
  }

  static std::string dataset_path(const Part& p, std::string_view name) {
    return p.group == "/" ? detail::concat("/", name) : detail::concat(p.group, "/", name);
  }

  const State& state() const {
    AVGRAD_CHECK(state_, "AudioSetFeatures", "not opened (use AudioSetFeatures::open)");
    return *state_;
  }

  Tensor<float, Cpu> read_row(const Part& p, std::string_view name, const detail::H5Handle& d, std::int64_t row,
                              const Shape& shape) const {
    const std::string dp = dataset_path(p, name);
    return detail::read_rows_of<float>({"AudioSetFeatures::get", state().file.path(), dp}, d.get(), row, 1, &shape);
  }

  void check_finite(const Part& p, std::string_view name, std::int64_t row, std::int64_t i,
                    const Tensor<float, Cpu>& t) const {
    const float* x = t.data();
    const std::int64_t n = t.numel();
    for (std::int64_t k = 0; k < n; ++k)
      if (!std::isfinite(x[k]))
        throw Error(
            "AudioSetFeatures::get",
            detail::concat(state().file.path(), ": dataset '", dataset_path(p, name), "': row ", row, " (sample ", i,
                           ") holds ", std::isnan(x[k]) ? "NaN" : "an infinite value", " at element ", k));
  }

  std::shared_ptr<const State> state_;
};

}  // namespace avgrad::data
