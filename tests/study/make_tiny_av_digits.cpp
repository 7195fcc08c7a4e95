// Writes a tiny AV-Digits-format dataset (manifest.json + shards) whose classes are easy to learn
// from either modality: the audio of class c is a tone at 300 + 150·c Hz in noise, the video a
// bright 4 × 4 square at a class-dependent place in 16 × 16 frames of noise. The end-to-end
// study test runs the main job on it, so CI exercises the real pipeline in seconds.
//
//   make_tiny_av_digits OUT_DIR [PER_CLASS_TRAIN=6] [PER_CLASS_EVAL=3]
#include <avgrad/data/av_digits.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace avd = avgrad::av_digits;

namespace {

constexpr int kFrames = 4, kSize = 16;

avd::ShardData make_split(std::int64_t per_class, std::uint64_t seed, avd::SplitInfo& info, const std::string& file) {
  avgrad::Generator gen(seed);
  avd::ShardData d;
  d.frames = kFrames;
  d.height = d.width = kSize;
  for (std::int64_t i = 0; i < per_class * avd::kClasses; ++i) {
    const int c = static_cast<int>(i % avd::kClasses);
    const double f = 300.0 + 150.0 * c, phase = 6.283 * gen.next_uniform();
    for (std::int64_t k = 0; k < d.samples; ++k)
      d.audio.push_back(static_cast<float>(0.1 * std::sin(6.283185307 * f * static_cast<double>(k) / 16000.0 + phase) +
                                           0.02 * avd::normal_draw(gen)));
    const int x0 = (c % 5) * 3, y0 = (c / 5) * 8 + 2;  // ten places on a 5 × 2 grid
    for (int t = 0; t < kFrames; ++t)
      for (int y = 0; y < kSize; ++y)
        for (int x = 0; x < kSize; ++x) {
          const bool on = x >= x0 && x < x0 + 4 && y >= y0 && y < y0 + 4;
          const double v = (on ? 200.0 : 30.0) + 20.0 * avd::normal_draw(gen);
          d.video.push_back(static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0)));
        }
    d.label.push_back(c);
    d.speaker.push_back(0);
    d.image.push_back(c * avd::kImageIdStride + i);
    d.synthetic.push_back(1);
    ++info.per_class[static_cast<std::size_t>(c)];
    ++info.synthetic;
  }
  info.shards.push_back({file, d.size()});
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: make_tiny_av_digits OUT_DIR [PER_CLASS_TRAIN=6] [PER_CLASS_EVAL=3]\n");
    return 2;
  }
  try {
    const std::filesystem::path out = argv[1];
    const std::int64_t per_train = argc > 2 ? std::atoll(argv[2]) : 6, per_eval = argc > 3 ? std::atoll(argv[3]) : 3;
    if (per_train < 1 || per_eval < 1) throw avgrad::Error("make_tiny_av_digits", "per-class counts must be >= 1");
    std::filesystem::create_directories(out);
    avd::Manifest m;
    m.seed = 1;
    m.frames = kFrames;
    m.height = m.width = kSize;
    m.speakers = avd::human_speakers();
    m.notes = "synthetic tones and squares for the end-to-end study test";
    const char* splits[] = {"train", "val", "test"};
    for (int s = 0; s < 3; ++s) {
      avd::SplitInfo info;
      const std::string file = std::string(splits[s]) + "-00000.safetensors";
      avd::write_shard(out / file, make_split(s == 0 ? per_train : per_eval, 100 + s, info, file));
      m.splits[splits[s]] = info;
    }
    avd::write_manifest(out, m);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_tiny_av_digits: %s\n", e.what());
    return 2;
  }
  return 0;
}
