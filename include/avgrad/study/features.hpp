// AV-Digits as the study's feature tensors, computed once and cached: audio = Kaldi fbank
// z-scored per bin with training statistics, video = each frame's pixels in [0, 1] flattened.
// The study attacks these features, as the reference code attacks its AudioSet features.
//
//   auto fs = study::load_features("build/release/av-digits", "results/cache/features.safetensors");
//   fs.train.audio   // (N, 98, 32) fbank frames × bins
//   fs.train.video   // (N, 8, 1024) frames × pixels
//
// The cache is one safetensors file, written atomically, whose metadata holds a fingerprint of the
// dataset's manifest and of the options; a cache with another fingerprint is rebuilt, so changing
// the data or the options never serves stale features.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "avgrad/audio/frontend.hpp"
#include "avgrad/data/av_digits.hpp"
#include "avgrad/data/loader.hpp"
#include "avgrad/data/safetensors.hpp"
#include "avgrad/train/progress.hpp"
#include "avgrad/train/trainer.hpp"

namespace avgrad::study {

struct FeatureOptions {
  /// 32 bins divide a 32 × 32 frame's 1024 pixels, so early fusion can cut video frames into rows
  /// of the audio's width (the reference code's concat-in-time layout).
  std::int64_t mel_bins = 32;
  /// 20 ms hops give 49 frames a second: the audio CNN's cost is linear in frames, and a spoken
  /// digit needs no finer grid at these sizes.
  double frame_length_ms = 25, frame_shift_ms = 20;
  /// Video frames are average-pooled by this factor per side (2: 32 × 32 → 16 × 16, 256 features
  /// a frame), which keeps the digit legible and early fusion's stem input short.
  std::int64_t video_pool = 2;
  /// Examples kept per split (0: all): the CI-sized study uses a few dozen.
  std::int64_t train_limit = 0, val_limit = 0, test_limit = 0;

  void check() const {
    AVGRAD_CHECK(mel_bins >= 1 && frame_length_ms > 0 && frame_shift_ms > 0 && video_pool >= 1, "FeatureOptions",
                 "mel_bins, frame_length_ms, frame_shift_ms and video_pool must be positive");
    AVGRAD_CHECK(train_limit >= 0 && val_limit >= 0 && test_limit >= 0, "FeatureOptions",
                 "split limits must be >= 0 (0: the whole split)");
  }
  std::string str() const {
    std::ostringstream s;
    s << "fbank" << mel_bins << "/" << frame_length_ms << "ms/" << frame_shift_ms << "ms, video pool " << video_pool
      << ", limits " << train_limit << "," << val_limit << "," << test_limit;
    return s.str();
  }
};

/// The three splits as feature tensors, ready for train::Trainer and the attacks.
struct FeatureSet {
  train::TensorData<float> train, val, test;
  std::int64_t num_classes = 0;
  std::string fingerprint;  ///< what the features were computed from (dataset manifest + options)
  bool from_cache = false;

  std::int64_t audio_frames() const { return train.audio.size(1); }
  std::int64_t mel_bins() const { return train.audio.size(2); }
  std::int64_t video_frames() const { return train.video.size(1); }
  std::int64_t video_dim() const { return train.video.size(2); }
};

namespace features_detail {

/// FNV-1a, 64 bit: enough to tell one manifest from another, not a security hash.
inline std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  AVGRAD_CHECK(f.good(), "study::load_features", "cannot read ", p.string());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline audio::FrontEndOptions fbank_options(const FeatureOptions& o, int sample_rate) {
  audio::kaldi::FbankOptions fb;
  fb.sample_frequency = sample_rate;
  fb.num_mel_bins = o.mel_bins;
  fb.frame_length_ms = o.frame_length_ms;
  fb.frame_shift_ms = o.frame_shift_ms;
  fb.dither = 0.0;  // features must be a function of the waveform: the cache depends on it
  audio::FrontEndOptions fo;
  fo.features = fb;
  fo.layout = audio::FeatureLayout::time_freq;  // (B, T, F), as the study's audio encoder reads
  return fo;
}

/// One split as features: audio (N, T, F) normalised by `frontend`, video (N, T, H·W), labels (N).
inline train::TensorData<float> split_features(const AvDigits& split, audio::FrontEnd<float>& frontend,
                                               std::int64_t limit, std::int64_t pool, const std::string& label,
                                               bool quiet) {
  NoGradGuard no_grad;
  const std::int64_t n = limit > 0 ? std::min(limit, split.size()) : split.size();
  AVGRAD_CHECK(n >= 1, "study::load_features", "the ", label, " split is empty");
  data::DataLoader<AvDigits> loader(split, {.batch_size = 64});
  std::vector<Tensor<float, Cpu>> a, v;
  std::vector<std::int64_t> y;
  std::int64_t done = 0;
  ProgressBar bar("features " + label, (n + 63) / 64, 64);
  for (auto& b : loader.epoch(0)) {
    if (done >= n) break;
    const std::int64_t take = std::min(b.size(), n - done);
    auto audio = frontend(b.audio);
    const auto& c = b.video;  // (B, T, 1, H, W)
    AVGRAD_CHECK(c.size(3) % pool == 0 && c.size(4) % pool == 0, "study::load_features", label, " frames of ",
                 c.size(3), " × ", c.size(4), " cannot be pooled by ", pool);
    auto frames = c.reshape({c.size(0) * c.size(1), c.size(2), c.size(3), c.size(4)});
    if (pool > 1) frames = avg_pool2d(frames, {pool, pool});
    auto video = frames.reshape({c.size(0), c.size(1), frames.size(1) * frames.size(2) * frames.size(3)});
    a.push_back(audio.narrow(0, 0, take).contiguous());
    v.push_back(video.narrow(0, 0, take).contiguous());
    const auto labels = b.labels.to_vector();
    y.insert(y.end(), labels.begin(), labels.begin() + take);
    done += take;
    if (!quiet) bar.update(static_cast<std::int64_t>(a.size()));
  }
  train::TensorData<float> d;
  d.audio = concat(a, 0);
  d.video = concat(v, 0);
  d.y.classes = from_vector<std::int64_t>(y);
  return d;
}

inline const char* kSplits[] = {"train", "val", "test"};

}  // namespace features_detail

/// The study's features of the AV-Digits dataset in `data_dir`, from `cache` when it holds the same
/// fingerprint, else computed (fbank statistics from the training split) and written to `cache`
/// atomically. An empty `cache` path computes without caching.
inline FeatureSet load_features(const std::filesystem::path& data_dir, const std::filesystem::path& cache,
                                const FeatureOptions& o = {}, bool quiet = false) {
  namespace fd = features_detail;
  o.check();
  const auto manifest_path = data_dir / "manifest.json";
  AVGRAD_CHECK(std::filesystem::is_regular_file(manifest_path), "study::load_features", "no AV-Digits dataset at ",
               data_dir.string(), " (", manifest_path.string(), " is missing; build it with the av_digits target)");
  const std::string text = fd::read_text(manifest_path);
  const av_digits::Manifest manifest = av_digits::parse_manifest(text, manifest_path.string());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fd::fnv1a(o.str(), fd::fnv1a(text))));
  FeatureSet fs;
  fs.fingerprint = hex;
  fs.num_classes = 10;

  if (!cache.empty() && std::filesystem::is_regular_file(cache)) {
    try {
      const auto f = SafetensorsFile::open(cache);
      const auto it = f.metadata().find("study.fingerprint");
      if (it != f.metadata().end() && it->second == fs.fingerprint) {
        train::TensorData<float>* parts[] = {&fs.train, &fs.val, &fs.test};
        for (int s = 0; s < 3; ++s) {
          const std::string k = fd::kSplits[s];
          parts[s]->audio = f.get<float>(k + ".audio");
          parts[s]->video = f.get<float>(k + ".video");
          parts[s]->y.classes = f.get<std::int64_t>(k + ".labels");
          parts[s]->check("study::load_features");
        }
        fs.from_cache = true;
        return fs;
      }
    } catch (const Error& e) {  // a damaged cache is rebuilt, not trusted
      std::fprintf(stderr, "study: rebuilding the feature cache %s (%s)\n", cache.string().c_str(), e.what());
    }
  }

  const auto train_split = AvDigits::open(data_dir, "train");
  const auto val_split = AvDigits::open(data_dir, "val");
  const auto test_split = AvDigits::open(data_dir, "test");
  audio::FrontEnd<float> frontend(fd::fbank_options(o, manifest.sample_rate));
  {
    NoGradGuard no_grad;
    audio::FeatureStatistics stats;
    data::DataLoader<AvDigits> loader(train_split, {.batch_size = 64});
    std::int64_t seen = 0;
    for (auto& b : loader.epoch(0)) {
      if (o.train_limit > 0 && seen >= o.train_limit) break;
      stats.add(frontend.features(b.audio));
      seen += b.size();
    }
    frontend.set_normalizer(stats, false);
  }
  fs.train = fd::split_features(train_split, frontend, o.train_limit, o.video_pool, "train", quiet);
  fs.val = fd::split_features(val_split, frontend, o.val_limit, o.video_pool, "val", quiet);
  fs.test = fd::split_features(test_split, frontend, o.test_limit, o.video_pool, "test", quiet);

  if (!cache.empty()) {
    std::filesystem::create_directories(cache.parent_path().empty() ? "." : cache.parent_path());
    SafetensorsWriter w;
    const train::TensorData<float>* parts[] = {&fs.train, &fs.val, &fs.test};
    for (int s = 0; s < 3; ++s) {
      const std::string k = fd::kSplits[s];
      w.add(k + ".audio", parts[s]->audio);
      w.add(k + ".video", parts[s]->video);
      w.add(k + ".labels", parts[s]->y.classes);
    }
    w.write(cache, {{"study.fingerprint", fs.fingerprint}, {"study.features", o.str()}});
  }
  return fs;
}

}  // namespace avgrad::study
