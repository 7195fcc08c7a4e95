// libFuzzer harness for the .npy and .npz readers (header dict parser, dtype mapping, ZIP
// central directory, ZIP64 fields, CRC-32).
//
// Contract under test: any byte string either parses or throws avgrad::Error; nothing else
// escapes and nothing reads out of bounds; an array that reads back in its stored type
// re-serialises to a .npy that reads back to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "avgrad/data/npy.hpp"

namespace {

[[noreturn]] void oracle_failure(const char* what) {
  std::fprintf(stderr, "fuzz_npy: invariant violated: %s\n", what);
  std::abort();
}

template <avgrad::Element T> void try_npy(std::span<const std::uint8_t> bytes) {
  try {
    auto t = avgrad::npy_from_bytes<T>(bytes, "fuzz");
    const auto h = avgrad::read_npy_header(bytes, "fuzz");
    if (h.code != avgrad::detail::stored_dtype_of<T>()) return;
    auto again = avgrad::npy_from_bytes<T>(avgrad::npy_to_bytes(t), "rewrite");
    const auto a = t.to_vector(), b = again.to_vector();
    if (!(again.shape() == t.shape()) || a.size() != b.size()) oracle_failure("npy round trip changed the shape");
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!(a[i] == b[i]) && a[i] == a[i]) oracle_failure("npy round trip changed a value");
  } catch (const avgrad::Error&) {
  }
}

template <avgrad::Element T> void try_member(const avgrad::NpzFile& z, const std::string& name) {
  try {
    (void)z.get<T>(name);
  } catch (const avgrad::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  try_npy<float>(bytes);
  try_npy<double>(bytes);
  try_npy<std::int32_t>(bytes);
  try_npy<std::int64_t>(bytes);
  try_npy<bool>(bytes);
  try_npy<std::uint8_t>(bytes);
  try {
    const auto z = avgrad::NpzFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz");
    for (const auto& n : z.names()) {
      (void)z.shape(n);
      try_member<float>(z, n);
      try_member<double>(z, n);
      try_member<std::int32_t>(z, n);
      try_member<std::int64_t>(z, n);
      try_member<bool>(z, n);
      try_member<std::uint8_t>(z, n);
    }
  } catch (const avgrad::Error&) {
  }
  return 0;
}
