// main() of a benchmark binary that also has a correctness mode: `--<flag>=PATH` runs
// check(PATH) against a PyTorch reference instead of the benchmarks, so benchmarks/compare.py can
// prove both sides compute the same thing before it times them.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

namespace avgrad::bench {

/// Google Benchmark's own main: runs the benchmarks the command line selects.
inline int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

/// `flag` like "--check="; check(path) returns the exit status (0: agreement). An exception in
/// the check is reported with the flag and gives exit status 2.
template <class Check> int main_with_check(int argc, char** argv, std::string_view flag, Check check) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.rfind(flag, 0) == 0) {
      try {
        return check(std::string(a.substr(flag.size())));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s %.*s: %s\n", argv[0], static_cast<int>(flag.size() - 1), flag.data(), e.what());
        return 2;
      }
    }
  }
  return run_benchmarks(argc, argv);
}

}  // namespace avgrad::bench
