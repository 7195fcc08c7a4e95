// Checkpoints as safetensors files. save_state_dict/load_state_dict store a
// module's parameters and buffers under PyTorch's names, so
// safetensors.torch.load_file + model.load_state_dict read them in PyTorch and
// the reverse works too. save_checkpoint/load_checkpoint add what resuming needs
// for an identical continuation: optimizer buffers and options, LR-schedule step,
// generator state (data order, dropout) and the training step. Every write is
// atomic (temp file + rename); every file carries avgrad.format_version.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "avgrad/data/safetensors.hpp"
#include "avgrad/nn/module.hpp"
#include "avgrad/optim/optimizer.hpp"
#include "avgrad/optim/schedule.hpp"

namespace avgrad {

/// Bumped when the key layout of checkpoints changes; loaders reject newer files.
inline constexpr int kCheckpointFormatVersion = 1;

namespace detail {
inline void check_format(const SafetensorsFile& f, const std::filesystem::path& path, std::string_view kind,
                         const char* op) {
  const auto& md = f.metadata();
  auto v = md.find("avgrad.format_version");
  auto k = md.find("avgrad.kind");
  if (kind == "state_dict" && v == md.end()) return;  // plain safetensors from PyTorch/NumPy: no avgrad keys
  AVGRAD_CHECK(v != md.end() && k != md.end(), op, path.string(), " is not an avgrad ", kind,
               " (no avgrad.format_version / avgrad.kind metadata)");
  int version = 0;
  try {
    version = std::stoi(v->second);
  } catch (...) {
    throw Error(op, concat(path.string(), ": malformed avgrad.format_version '", v->second, "'"));
  }
  AVGRAD_CHECK(version >= 1 && version <= kCheckpointFormatVersion, op, path.string(), " has format version ", version,
               "; this avgrad reads versions 1 to ", kCheckpointFormatVersion);
  AVGRAD_CHECK(kind != "checkpoint" || k->second == "checkpoint", op, path.string(), " holds a ", k->second,
               ", not a checkpoint");
}
}  // namespace detail

/// Writes module.state_dict() (PyTorch names) to `path` as safetensors.
template <Floating T, Device D> void save_state_dict(const std::filesystem::path& path, const nn::Module<T, D>& module,
                                                     std::map<std::string, std::string> metadata = {}) {
  metadata["avgrad.format_version"] = std::to_string(kCheckpointFormatVersion);
  metadata["avgrad.kind"] = "state_dict";
  metadata.emplace("format", "pt");
  nn::StateDict<T, Cpu> host;  // the same file from any device (shallow copies on the CPU)
  for (const auto& [n, t] : module.state_dict()) host.emplace(n, t.template to<Cpu>());
  save_safetensors(path, host, metadata);
}

/// Loads a safetensors state dict (avgrad's or PyTorch's) into `module`; strict
/// loading throws naming every missing/unexpected/mismatched key.
template <Floating T, Device D>
nn::LoadReport load_state_dict(const std::filesystem::path& path, nn::Module<T, D>& module, bool strict = true) {
  const auto f = SafetensorsFile::open(path);
  detail::check_format(f, path, "state_dict", "load_state_dict");
  nn::StateDict<T, Cpu> dict;
  for (const auto& n : f.names()) {
    // PyTorch stores counters (BatchNorm's num_batches_tracked) as int64; avgrad
    // state dicts are of one floating type, so integer entries are converted.
    const auto& dt = f.dtype(n);
    const bool integer = dt[0] == 'I' || dt[0] == 'U' || dt == "BOOL";
    dict.emplace(n, integer ? f.get<std::int64_t>(n).template to<T>() : f.get<T>(n));
  }
  try {
    return module.load_state_dict(dict, strict);
  } catch (const Error& e) {
    throw Error("load_state_dict", detail::concat(path.string(), ": ", e.what()));
  }
}

/// What a checkpoint holds besides the module; null members are not saved/restored. The file
/// is the same whichever device the module and optimizer live on.
template <Floating T, Device D = Cpu> struct CheckpointParts {
  nn::Module<T, D>* module = nullptr;
  optim::Optimizer<T, D>* optimizer = nullptr;
  optim::LRScheduler* scheduler = nullptr;
  Generator* generator = nullptr;
  std::int64_t step = 0;                        ///< saved; restored by load_checkpoint
  std::map<std::string, std::string> metadata;  ///< user keys (saved as "user.<key>")
};

/// Tensors: "model.<name>", "optimizer.<key>"; metadata: "optimizer.<key>",
/// "scheduler.<key>", "generator.seed", "generator.offset", "step", "user.<key>".
template <Floating T, Device D = Cpu>  // the default serves save_checkpoint<T>(path, {parts...})
void save_checkpoint(const std::filesystem::path& path, const CheckpointParts<T, D>& parts) {
  AVGRAD_CHECK(parts.module != nullptr, "save_checkpoint", "no module to save in ", path.string());
  SafetensorsWriter w;
  std::map<std::string, std::string> md;
  for (const auto& [n, t] : parts.module->state_dict()) w.add("model." + n, t.template to<Cpu>());
  if (parts.optimizer) {
    auto st = parts.optimizer->state_dict();
    for (const auto& [n, t] : st.tensors) w.add("optimizer." + n, t.template to<Cpu>());
    for (const auto& [k, v] : st.scalars) md["optimizer." + k] = v;
  }
  if (parts.scheduler)
    for (const auto& [k, v] : parts.scheduler->state_dict()) md["scheduler." + k] = v;
  if (parts.generator) {
    md["generator.seed"] = std::to_string(parts.generator->seed());
    md["generator.offset"] = std::to_string(parts.generator->offset());
  }
  for (const auto& [k, v] : parts.metadata) md["user." + k] = v;
  md["step"] = std::to_string(parts.step);
  md["avgrad.format_version"] = std::to_string(kCheckpointFormatVersion);
  md["avgrad.kind"] = "checkpoint";
  md["format"] = "pt";
  w.write(path, md);
}

/// Restores every non-null part from `path`; sets parts.step and parts.metadata
/// (user keys). Missing sections for requested parts throw, naming the file.
template <Floating T, Device D> void load_checkpoint(const std::filesystem::path& path, CheckpointParts<T, D>& parts) {
  const char* op = "load_checkpoint";
  const auto f = SafetensorsFile::open(path);
  detail::check_format(f, path, "checkpoint", op);
  const auto& md = f.metadata();
  auto prefixed = [&](const std::string& prefix) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : md)
      if (k.rfind(prefix, 0) == 0) out.emplace(k.substr(prefix.size()), v);
    return out;
  };
  auto tensors = [&](const std::string& prefix) {
    std::map<std::string, Tensor<T, D>> out;
    for (const auto& n : f.names())
      if (n.rfind(prefix, 0) == 0) out.emplace(n.substr(prefix.size()), f.get<T>(n).template to<D>());
    return out;
  };
  auto number = [&](const std::string& key) -> std::uint64_t {
    auto it = md.find(key);
    AVGRAD_CHECK(it != md.end(), op, path.string(), " lacks metadata key '", key, "'");
    try {
      std::size_t used = 0;
      auto v = std::stoull(it->second, &used);
      AVGRAD_CHECK(used == it->second.size(), op, "trailing characters");
      return v;
    } catch (...) {
      throw Error(op, detail::concat(path.string(), ": malformed value '", it->second, "' for '", key, "'"));
    }
  };
  try {
    if (parts.module) parts.module->load_state_dict(tensors("model."), true);
    if (parts.optimizer) {
      optim::OptimizerState<T, D> st{tensors("optimizer."), prefixed("optimizer.")};
      AVGRAD_CHECK(!st.scalars.empty(), op, "no optimizer state");
      parts.optimizer->load_state_dict(st);
    }
    if (parts.scheduler) {
      auto st = prefixed("scheduler.");
      AVGRAD_CHECK(!st.empty(), op, "no scheduler state");
      parts.scheduler->load_state_dict(st);
    }
  } catch (const Error& e) {
    throw Error(op, detail::concat(path.string(), ": ", e.what()));
  }
  if (parts.generator) parts.generator->set_state(number("generator.seed"), number("generator.offset"));
  parts.step = static_cast<std::int64_t>(number("step"));
  parts.metadata = prefixed("user.");
}

}  // namespace avgrad
