// What the pipelines on the study's own data formats (audioset_features, kinetics_sounds) share:
// option validators with readable messages, the evaluation set as attack batches, and the JSON /
// Markdown cells of their summaries (the attack reports' own formatting).
#pragma once

#include <CLI/CLI.hpp>
#include <avgrad/attacks/evaluate.hpp>
#include <avgrad/train/trainer.hpp>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace examples {

using Batches = std::vector<std::pair<avgrad::models::AVInput<float>, avgrad::attacks::Labels<float>>>;

/// The first `limit` examples of `d` as the (input, labels) batches attacks and the latent report take.
inline Batches as_batches(const avgrad::train::TensorData<float>& d, std::int64_t limit, std::int64_t batch) {
  Batches out;
  const std::int64_t n = std::min(d.size(), limit);
  for (std::int64_t s = 0; s < n; s += batch) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = s; i < std::min(n, s + batch); ++i) idx.push_back(i);
    auto b = d.rows(idx);
    out.emplace_back(b.x, b.y);
  }
  return out;
}

/// A JSON string (escaped as the attack reports escape).
inline std::string json_string(const std::string& s) { return avgrad::attacks::eval_detail::json(s); }
/// A JSON number, 6 significant digits; null when not finite.
inline std::string json_number(double v) {
  return std::isfinite(v) ? avgrad::attacks::eval_detail::num(v, "%.6g") : std::string("null");
}
/// Markdown cell: a dash where there is no value (a modality that is not attacked).
inline std::string md_number(double v) { return std::isfinite(v) ? json_number(v) : "–"; }

/// CLI11's PositiveNumber / NonNegativeNumber quote the whole double range in their message;
/// these say what is wrong with the value.
inline CLI::Validator at_least(double lo, bool strict) {
  return CLI::Validator(
      [lo, strict](std::string& s) {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        const bool ok = !s.empty() && *end == '\0' && std::isfinite(v) && (strict ? v > lo : v >= lo);
        return ok ? std::string() : avgrad::detail::concat("must be ", strict ? "> " : ">= ", lo, ", got '", s, "'");
      },
      strict ? "POSITIVE" : "NONNEGATIVE");
}
inline const CLI::Validator kPositive = at_least(0, true), kNonNegative = at_least(0, false);

}  // namespace examples
