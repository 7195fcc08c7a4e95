// Shared pieces of the end-to-end checks of the dataset examples: running a program and telling
// a clean failure (exit status) from a crash (signal), and reading numbers back from the result
// files without a JSON library. Every failed check prints what and where, and the driver exits 1.
#pragma once

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace examples_check {

namespace fs = std::filesystem;

inline int failures = 0;

inline void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string quote(const std::string& s) { return "'" + s + "'"; }

/// Runs `cmd` through the shell with stdout and stderr captured into `log`; returns the exit
/// status, or -signal when the program was killed (a crash, never a clean failure).
inline int run(const std::string& cmd, const fs::path& log) {
  const std::string full = cmd + " > " + quote(log.string()) + " 2>&1";
  std::printf("$ %s\n", cmd.c_str());
  std::fflush(stdout);
  const int st = std::system(full.c_str());
  if (st == -1) return -1000;
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  const int code = WEXITSTATUS(st);
  // The shell reports a child killed by a signal as 128 + signal.
  return code > 128 && code < 160 ? -(code - 128) : code;
}

/// The program must fail cleanly: a non-zero exit (not a signal) and a message holding every
/// one of `needles` (what is wrong and where).
inline void expect_clean_failure(const std::string& cmd, const fs::path& log, const std::vector<std::string>& needles) {
  const int rc = run(cmd, log);
  const std::string text = read_text(log);
  expect(rc > 0, "expected a non-zero exit (not a crash) from: " + cmd + "; got " + std::to_string(rc) +
                     "; output:\n" + text);
  for (const auto& n : needles)
    expect(text.find(n) != std::string::npos, "the error of `" + cmd + "` should mention " + quote(n) + "; got:\n" + text);
}

/// Every number following "key": in a JSON text (null is NaN), in order of appearance.
inline std::vector<double> json_numbers(const std::string& text, const std::string& key) {
  std::vector<double> out;
  const std::string k = "\"" + key + "\":";
  for (std::size_t at = text.find(k); at != std::string::npos; at = text.find(k, at + 1)) {
    const char* p = text.c_str() + at + k.size();
    if (std::string_view(p).starts_with("null")) {
      out.push_back(NAN);
      continue;
    }
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    out.push_back(end == p ? NAN : v);
  }
  return out;
}

/// The column `name` of a CSV text with a header row (empty cells are NaN).
inline std::vector<double> csv_column(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  int col = -1, i = 0;
  std::istringstream head(line);
  for (std::string cell; std::getline(head, cell, ','); ++i)
    if (cell == name) col = i;
  std::vector<double> out;
  if (col < 0) return out;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string cell;
    for (int j = 0; j <= col && std::getline(row, cell, ','); ++j) {
    }
    out.push_back(cell.empty() ? NAN : std::strtod(cell.c_str(), nullptr));
  }
  return out;
}

inline bool in_unit_range(double v) { return v >= 0 && v <= 1; }

/// The files every run writes, non-empty.
inline void expect_result_files(const fs::path& out) {
  for (const char* f : {"summary.md", "summary.json", "robustness.md", "robustness.csv", "robustness.json", "latent.md",
                        "latent.csv", "latent.json", "train_log.csv", "train_log.jsonl", "checkpoints/last.safetensors"})
    expect(fs::is_regular_file(out / f) && fs::file_size(out / f) > 0, "missing or empty result file " + (out / f).string());
  // Atomic writers leave no temporary files behind.
  for (const auto& e : fs::directory_iterator(out))
    expect(e.path().filename().string().find(".tmp.") == std::string::npos, "temporary file left: " + e.path().string());
}

/// Convexity (per class, where defined) and purity lie in [0, 1]; at least one class has them.
inline void expect_latent_ranges(const fs::path& out) {
  const std::string csv = read_text(out / "latent.csv");
  for (const char* col : {"purity", "convexity"}) {
    int defined = 0;
    for (double v : csv_column(csv, col)) {
      if (std::isnan(v)) continue;
      ++defined;
      expect(in_unit_range(v), std::string("latent.csv: ") + col + " " + std::to_string(v) + " outside [0, 1]");
    }
    expect(defined > 0, std::string("latent.csv: no class has a ") + col + " value");
  }
}

}  // namespace examples_check
