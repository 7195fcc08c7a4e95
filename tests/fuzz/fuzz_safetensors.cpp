// libFuzzer harness for the safetensors reader and the JSON reader behind it.
//
// Contract under test: any byte string either parses or throws avgrad::Error; nothing else
// escapes, nothing reads out of bounds, and a file that parses reads back, re-serialises and
// re-parses to the same tensors (the writer's output is always valid). Built with
// -fsanitize=fuzzer,address by clang, or linked with replay_main.cpp into a corpus replayer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "avgrad/data/detail/json.hpp"
#include "avgrad/data/safetensors.hpp"

namespace {

[[noreturn]] void oracle_failure(const char* what) {
  // A broken invariant is a finding: abort so both libFuzzer and the replayer report it.
  std::fprintf(stderr, "fuzz_safetensors: invariant violated: %s\n", what);
  std::abort();
}

template <avgrad::Element T>
void try_get(const avgrad::SafetensorsFile& f, const std::string& name, avgrad::SafetensorsWriter& rewrite) {
  try {
    auto t = f.get<T>(name);
    if (t.numel() != f.entry(name).numel()) oracle_failure("element count differs from the header");
    // Values read in the stored type itself go into the re-serialised file.
    if (f.entry(name).code == avgrad::detail::stored_dtype_of<T>()) rewrite.add(name, t);
  } catch (const avgrad::Error&) {
  }
}

void check_json(std::string_view text) {
  namespace json = avgrad::detail::json;
  try {
    const json::Value v = json::parse(text);
    std::string once, twice;
    json::write(once, v);
    json::write(twice, json::parse(once));
    if (once != twice) oracle_failure("JSON write/parse is not idempotent");
  } catch (const avgrad::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The JSON reader on its own, on the bytes after the would-be length field.
  if (size > 8) check_json(std::string_view(reinterpret_cast<const char*>(data) + 8, size - 8));

  avgrad::SafetensorsWriter rewrite;
  std::vector<std::string> names;
  try {
    const auto f = avgrad::SafetensorsFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz");
    names = f.names();
    for (const auto& n : names) {
      (void)f.raw(n);
      (void)f.dtype(n);
      try {
        (void)f.shape(n);
      } catch (const avgrad::Error&) {
      }
      try_get<float>(f, n, rewrite);
      try_get<double>(f, n, rewrite);
      try_get<std::int32_t>(f, n, rewrite);
      try_get<std::int64_t>(f, n, rewrite);
      try_get<bool>(f, n, rewrite);
      try_get<std::uint8_t>(f, n, rewrite);
    }
    (void)f.metadata();
  } catch (const avgrad::Error&) {
    return 0;
  }
  // Whatever was read back must serialise to a file that parses with the same raw bytes.
  try {
    const auto g = avgrad::SafetensorsFile::from_bytes(rewrite.to_bytes(), "rewrite");
    if (g.size() != rewrite.size()) oracle_failure("rewritten file lost tensors");
  } catch (const avgrad::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    oracle_failure("the writer produced a file the reader rejects");
  }
  return 0;
}
