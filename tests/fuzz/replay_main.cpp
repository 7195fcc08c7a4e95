// Corpus replayer for the fuzz harnesses when libFuzzer is unavailable (g++ builds): runs
// LLVMFuzzerTestOneInput on every file given (directories are walked), on every truncation
// of each, and on deterministic random mutations of each (bit flips, interesting bytes and
// 64-bit values, inserts, deletes), so CI exercises the parsers' error paths on every build.
// A harness failure aborts the process; success prints the number of inputs run.
//
// usage: fuzz_<name>_replay [--mutations N] <file-or-dir>...
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

struct Rng {  // xorshift64*: reproducible across platforms
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  std::size_t below(std::size_t n) { return n ? static_cast<std::size_t>(next() % n) : 0; }
};

void run(const std::vector<std::uint8_t>& input, std::size_t& count) {
  // A copy in an exact-size heap block, so ASan sees reads one past the end.
  std::vector<std::uint8_t> exact(input);
  exact.shrink_to_fit();
  LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
  ++count;
}

void mutate(std::vector<std::uint8_t>& b, Rng& rng) {
  static constexpr std::uint8_t kBytes[] = {0,   1,   0x7F, 0x80, 0xFF, '{',  '}', '[', ']', '"',
                                            ',', ':', '0',  '9',  '-',  '\\', ' ', '(', ')', '\''};
  static constexpr std::uint64_t kWords[] = {
      0, 1, 8, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFull, 0xFFFFull, 100000001ull, 1ull << 32};
  const int edits = 1 + static_cast<int>(rng.below(4));
  for (int e = 0; e < edits; ++e) {
    const std::size_t at = rng.below(b.size() + 1);
    switch (rng.below(6)) {
      case 0:
        if (at < b.size()) b[at] ^= static_cast<std::uint8_t>(1u << rng.below(8));
        break;
      case 1:
        if (at < b.size()) b[at] = kBytes[rng.below(std::size(kBytes))];
        break;
      case 2:
        b.insert(b.begin() + static_cast<long>(at), kBytes[rng.below(std::size(kBytes))]);
        break;
      case 3:
        if (at < b.size()) b.erase(b.begin() + static_cast<long>(at));
        break;
      case 4: {
        const std::uint64_t w = kWords[rng.below(std::size(kWords))];
        const std::size_t width = std::size_t(1) << rng.below(4);  // 1, 2, 4 or 8 bytes
        for (std::size_t k = 0; k < width && at + k < b.size(); ++k)
          b[at + k] = static_cast<std::uint8_t>(w >> (8 * k));
        break;
      }
      default:
        if (at < b.size()) b[at] = static_cast<std::uint8_t>(rng.next());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mutations = 2000;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) {
      mutations = std::strtoull(argv[++i], nullptr, 10);
      continue;
    }
    const std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s [--mutations N] <file-or-dir>...\n", argv[0]);
    return 2;
  }
  std::size_t count = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<std::uint8_t> seed{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    run(seed, count);
    const std::size_t step = std::max<std::size_t>(1, seed.size() / 4096);
    for (std::size_t cut = 0; cut < seed.size(); cut += step)
      run(std::vector<std::uint8_t>(seed.begin(), seed.begin() + static_cast<long>(cut)), count);
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the file name: a per-seed stream
    for (const char c : f.filename().string()) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    Rng rng{h | 1};
    for (std::size_t m = 0; m < mutations; ++m) {
      std::vector<std::uint8_t> b = seed;
      mutate(b, rng);
      run(b, count);
    }
  }
  std::printf("replayed %zu inputs from %zu seed files: no failure\n", count, files.size());
  return 0;
}
