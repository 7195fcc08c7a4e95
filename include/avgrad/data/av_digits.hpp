// AV-Digits: a 10-class audio-visual dataset (moving MNIST digit + spoken digit) — builder pieces and reader.
//
// The builder (examples/build_av_digits.cpp) turns packaged recordings into safetensors shards
// plus a JSON manifest; everything it does that does not need libsndfile, libsoxr or espeak-ng
// lives here so that it can be tested without those libraries or the packages:
//   - moving-digit synthesis: a real digit bouncing inside a T × H × W clip (Moving MNIST);
//   - audio centring: put the spoken part of a recording in the middle of a fixed window;
//   - split assignment: digit images split disjointly, speakers held out per person;
//   - shards and manifest: writing, and the reader AvDigits, which satisfies the data layer's
//     Dataset concept (sample_type, size, get, label, collate).
// Layout of a dataset folder: manifest.json and <split>-<k>.safetensors. A shard holds
//   audio     F32 (n, 16000)          16 kHz, 1 s, in [-1, 1]
//   video     U8  (n, T, 1, H, W)     pixel / 255 is the intensity in [0, 1]
//   label     I64 (n)                 digit 0..9
//   speaker   I64 (n)                 index into the manifest's "speakers"
//   synthetic U8  (n)                 1 for espeak-ng voices, 0 for human recordings
//   image     I64 (n)                 label * 100000 + index of the digit image in its class
// Every reader failure is an avgrad::Error naming the file and the reason.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/philox.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"
#include "avgrad/data/detail/json.hpp"
#include "avgrad/data/safetensors.hpp"

namespace avgrad::av_digits {

inline constexpr int kClasses = 10;
inline constexpr int kSampleRate = 16000;
inline constexpr std::int64_t kClipSamples = 16000;  // 1 s
inline constexpr int kFormatVersion = 1;
inline constexpr std::int64_t kImageIdStride = 100000;  // image id = label * stride + index in class

// ---- moving digits -------------------------------------------------------------------

/// A grayscale picture, row-major, values in [0, 1].
struct Image {
  std::int64_t width = 0, height = 0;
  std::vector<float> pixels;
  float at(std::int64_t x, std::int64_t y) const { return pixels[static_cast<std::size_t>(y * width + x)]; }
};

/// Crops `src` to the bounding box of its pixels above `threshold` and scales it (box-filtered
/// supersampling, aspect kept) so its longer side is `target` pixels. MNIST digits sit in a
/// 28 × 28 field with blank margins; cropping first makes every digit fill the same box.
/// An image with no pixel above the threshold becomes a blank target × target image.
inline Image fit_digit(const Image& src, std::int64_t target, float threshold = 0.0f) {
  AVGRAD_CHECK(target >= 1, "av_digits", "digit size must be >= 1, got ", target);
  AVGRAD_CHECK(src.width > 0 && src.height > 0 && src.pixels.size() == static_cast<std::size_t>(src.width * src.height),
               "av_digits", "invalid digit image ", src.width, "x", src.height, " with ", src.pixels.size(), " pixels");
  std::int64_t x0 = src.width, y0 = src.height, x1 = -1, y1 = -1;
  for (std::int64_t y = 0; y < src.height; ++y)
    for (std::int64_t x = 0; x < src.width; ++x)
      if (src.at(x, y) > threshold) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (x1 < 0) return Image{target, target, std::vector<float>(static_cast<std::size_t>(target * target), 0.0f)};
  const double bw = static_cast<double>(x1 - x0 + 1), bh = static_cast<double>(y1 - y0 + 1);
  const double scale = static_cast<double>(target) / std::max(bw, bh);
  Image out;
  out.width = std::max<std::int64_t>(1, std::llround(bw * scale));
  out.height = std::max<std::int64_t>(1, std::llround(bh * scale));
  out.pixels.assign(static_cast<std::size_t>(out.width * out.height), 0.0f);
  // Each output pixel averages a 4 × 4 grid of bilinear samples of the box it covers: enough
  // anti-aliasing for the ≤ 2× reductions used here, without a resampling library.
  constexpr int kSub = 4;
  auto sample = [&](double sx, double sy) {
    sx = std::clamp(sx, 0.0, bw - 1.0), sy = std::clamp(sy, 0.0, bh - 1.0);
    const auto ix = static_cast<std::int64_t>(sx), iy = static_cast<std::int64_t>(sy);
    const std::int64_t jx = std::min<std::int64_t>(ix + 1, x1 - x0), jy = std::min<std::int64_t>(iy + 1, y1 - y0);
    const double fx = sx - static_cast<double>(ix), fy = sy - static_cast<double>(iy);
    auto p = [&](std::int64_t x, std::int64_t y) { return static_cast<double>(src.at(x0 + x, y0 + y)); };
    return (1 - fy) * ((1 - fx) * p(ix, iy) + fx * p(jx, iy)) + fy * ((1 - fx) * p(ix, jy) + fx * p(jx, jy));
  };
  for (std::int64_t oy = 0; oy < out.height; ++oy)
    for (std::int64_t ox = 0; ox < out.width; ++ox) {
      double acc = 0;
      for (int a = 0; a < kSub; ++a)
        for (int b = 0; b < kSub; ++b)
          acc += sample((static_cast<double>(ox) + (b + 0.5) / kSub) / scale - 0.5,
                        (static_cast<double>(oy) + (a + 0.5) / kSub) / scale - 0.5);
      out.pixels[static_cast<std::size_t>(oy * out.width + ox)] =
          static_cast<float>(std::clamp(acc / (kSub * kSub), 0.0, 1.0));
    }
  return out;
}

/// Positions of a point moving with constant velocity inside [0, max_x] × [0, max_y] and
/// reflecting elastically at the borders (Moving MNIST's physics). Frame 0 is the start.
struct Trajectory {
  std::vector<double> x, y;
};

/// Reflects p into [0, hi], flipping v at each bounce; a zero-width range pins p to 0.
inline void reflect_into(double& p, double& v, double hi) {
  if (hi <= 0) {
    p = 0;
    return;
  }
  // A step can exceed the range when the speed is large: keep reflecting until inside.
  while (p < 0 || p > hi) {
    if (p < 0) p = -p, v = -v;
    if (p > hi) p = 2 * hi - p, v = -v;
  }
}

inline Trajectory bounce_trajectory(double x0, double y0, double vx, double vy, int frames, double max_x,
                                    double max_y) {
  AVGRAD_CHECK(frames >= 1, "av_digits", "frames must be >= 1, got ", frames);
  AVGRAD_CHECK(std::isfinite(x0) && std::isfinite(y0) && std::isfinite(vx) && std::isfinite(vy), "av_digits",
               "trajectory start and velocity must be finite");
  Trajectory t;
  double x = x0, y = y0;
  reflect_into(x, vx, max_x);
  reflect_into(y, vy, max_y);
  for (int f = 0; f < frames; ++f) {
    t.x.push_back(x);
    t.y.push_back(y);
    x += vx, y += vy;
    reflect_into(x, vx, max_x);
    reflect_into(y, vy, max_y);
  }
  return t;
}

struct MotionOptions {
  int frames = 8;
  int size = 32;             ///< frames are size × size
  int digit_size = 0;        ///< longer side of the scaled digit; 0: round(0.625 · size)
  double min_speed = 1.0;    ///< pixels per frame, at size 32 (scaled with size)
  double max_speed = 3.0;    ///< pixels per frame, at size 32 (scaled with size)
  int distractors = 0;       ///< static fragments of other digits placed in the frame
  int distractor_size = 8;   ///< fragment side at size 32 (scaled with size)
  double pixel_noise = 0.0;  ///< std of Gaussian noise added to every pixel (0: none)
  int resolved_digit_size() const { return digit_size > 0 ? digit_size : static_cast<int>(std::lround(0.625 * size)); }
};

/// A rendered clip: T × size × size intensities as bytes (value / 255), and where the digit was.
struct MovingDigit {
  std::vector<std::uint8_t> frames;
  Trajectory path;  ///< top-left corner of the digit box per frame
  std::int64_t digit_width = 0, digit_height = 0;
};

/// Standard normal from two uniforms (Box–Muller); host-side noise for pixels.
inline double normal_draw(Generator& g) {
  const double u1 = std::max(g.next_uniform(), 1e-300), u2 = g.next_uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
}

/// Renders `digit` (already fitted with fit_digit) moving through o.frames frames: uniform
/// random start inside the frame, direction uniform on the circle, speed uniform in
/// [min_speed, max_speed] · size / 32, bouncing at the borders, so the whole digit is visible
/// in every frame. `distractor_sources` supply fragments (random crops, fixed over the clip)
/// when o.distractors > 0. Pixels combine by maximum, then noise is added and clipped to [0, 1].
/// Everything random comes from `gen`: the same generator state gives the same bytes.
inline MovingDigit render_moving_digit(const Image& digit, const MotionOptions& o, Generator& gen,
                                       const std::vector<const Image*>& distractor_sources = {}) {
  AVGRAD_CHECK(o.frames >= 1 && o.size >= 4, "av_digits", "need frames >= 1 and size >= 4, got ", o.frames, " and ",
               o.size);
  AVGRAD_CHECK(digit.width <= o.size && digit.height <= o.size, "av_digits", "digit ", digit.width, "x", digit.height,
               " does not fit a ", o.size, "x", o.size, " frame");
  AVGRAD_CHECK(o.min_speed >= 0 && o.max_speed >= o.min_speed, "av_digits", "need 0 <= min_speed <= max_speed, got ",
               o.min_speed, ", ", o.max_speed);
  AVGRAD_CHECK(o.distractors == 0 || !distractor_sources.empty(), "av_digits",
               "distractors requested but no source images given");
  const std::int64_t S = o.size, T = o.frames;
  const double max_x = static_cast<double>(S - digit.width), max_y = static_cast<double>(S - digit.height);
  const double scale = static_cast<double>(S) / 32.0;
  const double x0 = gen.next_uniform() * max_x, y0 = gen.next_uniform() * max_y;
  const double angle = gen.next_uniform() * 2.0 * 3.14159265358979323846;
  const double speed = (o.min_speed + (o.max_speed - o.min_speed) * gen.next_uniform()) * scale;
  MovingDigit out;
  out.path = bounce_trajectory(x0, y0, speed * std::cos(angle), speed * std::sin(angle), o.frames, max_x, max_y);
  out.digit_width = digit.width, out.digit_height = digit.height;

  std::vector<float> canvas(static_cast<std::size_t>(T * S * S), 0.0f);
  // Distractors: fixed fragments of other digits, as in cluttered MNIST, so that motion (not
  // mere presence of ink) identifies the digit.
  const std::int64_t fs = std::max<std::int64_t>(2, std::llround(o.distractor_size * scale));
  for (int k = 0; k < o.distractors; ++k) {
    const Image& src = *distractor_sources[gen.next_below(distractor_sources.size())];
    const std::int64_t w = std::min(fs, src.width), h = std::min(fs, src.height);
    const auto sx = static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(src.width - w + 1)));
    const auto sy = static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(src.height - h + 1)));
    const auto dx = static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(S - w + 1)));
    const auto dy = static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(S - h + 1)));
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x) {
          float& c = canvas[static_cast<std::size_t>((t * S + dy + y) * S + dx + x)];
          c = std::max(c, src.at(sx + x, sy + y));
        }
  }
  for (std::int64_t t = 0; t < T; ++t) {
    // Integer placement keeps the digit's strokes sharp; positions are rounded, so the
    // rounded corner stays inside [0, S - w] because the real one does.
    const auto px = static_cast<std::int64_t>(std::lround(out.path.x[static_cast<std::size_t>(t)]));
    const auto py = static_cast<std::int64_t>(std::lround(out.path.y[static_cast<std::size_t>(t)]));
    for (std::int64_t y = 0; y < digit.height; ++y)
      for (std::int64_t x = 0; x < digit.width; ++x) {
        float& c = canvas[static_cast<std::size_t>((t * S + py + y) * S + px + x)];
        c = std::max(c, digit.at(x, y));
      }
  }
  out.frames.resize(canvas.size());
  for (std::size_t i = 0; i < canvas.size(); ++i) {
    double v = canvas[i];
    if (o.pixel_noise > 0) v += o.pixel_noise * normal_draw(gen);
    out.frames[i] = static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
  }
  return out;
}

// ---- audio -------------------------------------------------------------------------------

/// [begin, end) sample range of the spoken part: frames (frame_seconds long) whose RMS is
/// within threshold_db of the loudest frame, from the first such frame to the end of the last.
/// A silent signal gives {0, 0}.
inline std::pair<std::int64_t, std::int64_t> active_region(const std::vector<float>& x, int sample_rate,
                                                           double threshold_db = -35.0, double frame_seconds = 0.02) {
  AVGRAD_CHECK(sample_rate > 0 && frame_seconds > 0, "av_digits", "need sample_rate > 0 and frame_seconds > 0");
  const auto n = static_cast<std::int64_t>(x.size());
  const std::int64_t fl = std::max<std::int64_t>(1, std::llround(frame_seconds * sample_rate));
  std::vector<double> rms;
  for (std::int64_t s = 0; s < n; s += fl) {
    double e = 0;
    const std::int64_t end = std::min(n, s + fl);
    for (std::int64_t i = s; i < end; ++i)
      e += static_cast<double>(x[static_cast<std::size_t>(i)]) * x[static_cast<std::size_t>(i)];
    rms.push_back(std::sqrt(e / static_cast<double>(end - s)));
  }
  const double peak = rms.empty() ? 0.0 : *std::max_element(rms.begin(), rms.end());
  if (peak <= 0) return {0, 0};
  const double floor = peak * std::pow(10.0, threshold_db / 20.0);
  std::int64_t first = -1, last = -1;
  for (std::size_t f = 0; f < rms.size(); ++f)
    if (rms[f] >= floor) {
      if (first < 0) first = static_cast<std::int64_t>(f);
      last = static_cast<std::int64_t>(f);
    }
  return {first * fl, std::min(n, (last + 1) * fl)};
}

/// A `length`-sample window of x centred on its active region (see active_region): shorter
/// speech is padded with zeros on both sides, longer speech is cropped around its centre.
/// The region [b, e) maps to [b - start, e - start) with start = (b + e) / 2 - length / 2
/// (integer division), samples outside x being zero. A silent x gives zeros.
inline std::vector<float> centre_audio(const std::vector<float>& x, std::int64_t length, int sample_rate,
                                       double threshold_db = -35.0) {
  AVGRAD_CHECK(length >= 1, "av_digits", "window length must be >= 1, got ", length);
  std::vector<float> out(static_cast<std::size_t>(length), 0.0f);
  const auto [b, e] = active_region(x, sample_rate, threshold_db);
  if (e <= b) return out;
  const std::int64_t start = (b + e) / 2 - length / 2;
  const auto n = static_cast<std::int64_t>(x.size());
  for (std::int64_t i = 0; i < length; ++i) {
    const std::int64_t s = start + i;
    if (s >= 0 && s < n) out[static_cast<std::size_t>(i)] = x[static_cast<std::size_t>(s)];
  }
  return out;
}

/// Scales x so that the RMS over its active region is `target_rms` (recordings differ by
/// 20 dB in level; the gain augmentation then varies it in a controlled range). Returns the
/// gain applied; a silent x is left as is (gain 1).
inline double normalise_speech_level(std::vector<float>& x, int sample_rate, double target_rms = 0.05,
                                     double threshold_db = -35.0) {
  const auto [b, e] = active_region(x, sample_rate, threshold_db);
  if (e <= b) return 1.0;
  double s = 0;
  for (std::int64_t i = b; i < e; ++i)
    s += static_cast<double>(x[static_cast<std::size_t>(i)]) * x[static_cast<std::size_t>(i)];
  const double rms = std::sqrt(s / static_cast<double>(e - b));
  if (rms <= 0) return 1.0;
  const double g = target_rms / rms;
  for (float& v : x) v = static_cast<float>(v * g);
  return g;
}

// ---- splits ------------------------------------------------------------------------------

enum class Split : int { train = 0, val = 1, test = 2 };
inline constexpr std::array<Split, 3> kSplits{Split::train, Split::val, Split::test};

inline std::string_view split_name(Split s) {
  switch (s) {
    case Split::train:
      return "train";
    case Split::val:
      return "val";
    case Split::test:
      return "test";
  }
  return "?";
}

/// "train", "val" (or "validation"), "test"; anything else throws naming the valid names.
inline Split parse_split(std::string_view s) {
  if (s == "train") return Split::train;
  if (s == "val" || s == "validation") return Split::val;
  if (s == "test") return Split::test;
  throw Error("av_digits", avgrad::detail::concat("unknown split \"", s, "\" (expected train, val or test)"));
}

/// The split of each of n images of one class: a seeded permutation puts round(n·test_fraction)
/// images in test, round(n·val_fraction) in val and the rest in train, so the three sets are
/// disjoint by construction and their sizes do not depend on chance. `stream` (e.g. the class)
/// separates the permutations of different classes under one seed.
inline std::vector<Split> assign_image_splits(std::int64_t n, double val_fraction, double test_fraction,
                                              std::uint64_t seed, std::uint64_t stream) {
  AVGRAD_CHECK(n >= 0 && val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1, "av_digits",
               "need n >= 0, fractions >= 0 and val + test < 1, got n ", n, ", val ", val_fraction, ", test ",
               test_fraction);
  const auto n_test = static_cast<std::int64_t>(std::llround(static_cast<double>(n) * test_fraction));
  const auto n_val = static_cast<std::int64_t>(std::llround(static_cast<double>(n) * val_fraction));
  AVGRAD_CHECK(n_test + n_val <= n, "av_digits", "split fractions leave no room for training images");
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  Generator g(seed * 0x9E3779B97F4A7C15ull + stream * 0xD1B54A32D192ED03ull + 0x1234);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(perm[static_cast<std::size_t>(i)],
              perm[static_cast<std::size_t>(g.next_below(static_cast<std::uint64_t>(i + 1)))]);
  std::vector<Split> out(static_cast<std::size_t>(n), Split::train);
  for (std::int64_t k = 0; k < n_test; ++k)
    out[static_cast<std::size_t>(perm[static_cast<std::size_t>(k)])] = Split::test;
  for (std::int64_t k = n_test; k < n_test + n_val; ++k)
    out[static_cast<std::size_t>(perm[static_cast<std::size_t>(k)])] = Split::val;
  return out;
}

/// A voice: a human recording set from a package or a synthetic espeak-ng configuration.
struct Speaker {
  std::string name;      ///< recording folder (human) or espeak-ng voice description (synthetic)
  std::string person;    ///< who speaks; the unit that is held out (one person may record several sets)
  std::string language;  ///< ISO 639-1
  std::string package;   ///< Debian package providing the recordings (or espeak-ng)
  std::string license;
  bool synthetic = false;
  Split split = Split::train;
};

/// The eight human recording sets of the Asterisk prompt packages (7 people: Allison Smith
/// recorded both the English and the Spanish set) and their fixed splits. Test holds out two
/// people (June Wallack, fr-CA; Carlo Flora, it, the only male voice), validation one (July
/// Jiménez, es-CO); each of their languages still has a human voice in train. The paths are
/// relative to <cache>/root/usr/share/asterisk/sounds.
inline std::vector<Speaker> human_speakers() {
  return {
      {"en_US_f_Allison", "Allison Smith", "en", "asterisk-core-sounds-en-wav", "CC-BY-SA-3.0", false, Split::train},
      {"es_MX_f_Allison", "Allison Smith", "es", "asterisk-core-sounds-es-wav", "CC-BY-SA-3.0", false, Split::train},
      {"it_IT_f_Menardi", "Paola Dal Zot", "it", "asterisk-prompt-it-menardi-wav", "CC-BY-SA-3.0-IT", false,
       Split::train},
      {"fr", "Armelle Desjardins", "fr", "asterisk-prompt-fr-armelle", "BSD-style (see debian/copyright)", false,
       Split::train},
      {"ru_RU_f_IvrvoiceRU", "IvrvoiceRU (Maxim)", "ru", "asterisk-core-sounds-ru-wav", "CC-BY-3.0", false,
       Split::train},
      {"es", "July E. Jimenez", "es", "asterisk-prompt-es-co", "GPL-2", false, Split::val},
      {"fr_CA_f_June", "June Wallack", "fr", "asterisk-core-sounds-fr-wav", "CC-BY-SA-3.0", false, Split::test},
      {"it_IT_m_Carlo", "Carlo Flora", "it", "asterisk-core-sounds-it-wav", "CC-BY-3.0", false, Split::test},
  };
}

/// Checks the held-out-speaker rule: every person appears in one split only, validation and
/// test contain human voices only, and every split has at least one human voice. Throws
/// avgrad::Error naming the speaker that breaks it.
inline void check_speaker_splits(const std::vector<Speaker>& speakers) {
  std::map<std::string, Split> person_split;
  std::array<int, 3> humans{};
  for (const Speaker& s : speakers) {
    AVGRAD_CHECK(!s.synthetic || s.split == Split::train, "av_digits", "synthetic voice \"", s.name,
                 "\" is assigned to ", split_name(s.split), ": validation and test audio must be human recordings");
    if (s.synthetic) continue;
    ++humans[static_cast<std::size_t>(s.split)];
    auto [it, fresh] = person_split.emplace(s.person, s.split);
    AVGRAD_CHECK(fresh || it->second == s.split, "av_digits", "speaker \"", s.name, "\" (", s.person, ") is in ",
                 split_name(s.split), " but the same person is also in ", split_name(it->second),
                 ": a held-out person must be held out entirely");
  }
  for (Split sp : kSplits)
    AVGRAD_CHECK(humans[static_cast<std::size_t>(sp)] > 0, "av_digits", "split ", split_name(sp),
                 " has no human speaker");
}

// ---- manifest ----------------------------------------------------------------------------

/// One shard file of a split.
struct ShardInfo {
  std::string file;  ///< relative to the dataset folder
  std::int64_t count = 0;
};

struct SplitInfo {
  std::vector<ShardInfo> shards;
  std::array<std::int64_t, kClasses> per_class{};
  std::int64_t real = 0, synthetic = 0;
  std::int64_t count() const {
    std::int64_t n = 0;
    for (const auto& s : shards) n += s.count;
    return n;
  }
};

/// A provenance entry: a Debian or npm package the data came from.
struct SourceInfo {
  std::string kind, name, version, role, license;
};

/// What manifest.json says. The reader needs format, version, geometry and the shard lists;
/// the rest documents provenance (written and read back, not interpreted).
struct Manifest {
  int version = kFormatVersion;
  std::uint64_t seed = 0;
  int frames = 8, height = 32, width = 32;
  int sample_rate = kSampleRate;
  std::int64_t samples = kClipSamples;
  std::map<std::string, std::string> options;  ///< the builder's command-line options, as given
  std::vector<Speaker> speakers;
  std::vector<SourceInfo> sources;
  std::map<std::string, SplitInfo> splits;  ///< "train", "val", "test"
  double build_seconds = 0;
  std::string notes;
};

namespace manifest_detail {

using JsonValue = avgrad::detail::json::Value;

inline JsonValue jstr(std::string s) {
  JsonValue v;
  v.kind = JsonValue::Kind::String;
  v.string = std::move(s);
  return v;
}
inline JsonValue jint(std::int64_t i) {
  JsonValue v;
  v.kind = JsonValue::Kind::Int;
  v.integer = i;
  return v;
}
inline JsonValue jnum(double d) {
  JsonValue v;
  v.kind = JsonValue::Kind::Number;
  v.number = d;
  return v;
}
inline JsonValue jbool(bool b) {
  JsonValue v;
  v.kind = JsonValue::Kind::Bool;
  v.boolean = b;
  return v;
}
inline JsonValue jarr() {
  JsonValue v;
  v.kind = JsonValue::Kind::Array;
  return v;
}
inline JsonValue jobj() {
  JsonValue v;
  v.kind = JsonValue::Kind::Object;
  return v;
}
inline void put(JsonValue& o, std::string key, JsonValue v) {
  o.keys.push_back(std::move(key));
  o.items.push_back(std::move(v));
}

/// Indented JSON, one key per line except for arrays of scalars (kept on one line so the
/// per-class counts read as a row).
inline void write_pretty(std::string& out, const JsonValue& v, int indent) {
  namespace json = avgrad::detail::json;
  const auto scalar_array = [](const JsonValue& a) {
    return std::all_of(a.items.begin(), a.items.end(),
                       [](const JsonValue& x) { return !x.is_array() && !x.is_object(); });
  };
  if (v.is_object() && !v.items.empty()) {
    out += "{\n";
    for (std::size_t i = 0; i < v.items.size(); ++i) {
      out.append(static_cast<std::size_t>(indent + 2), ' ');
      json::write_string(out, v.keys[i]);
      out += ": ";
      write_pretty(out, v.items[i], indent + 2);
      out += i + 1 < v.items.size() ? ",\n" : "\n";
    }
    out.append(static_cast<std::size_t>(indent), ' ');
    out += '}';
  } else if (v.is_array() && !v.items.empty() && !scalar_array(v)) {
    out += "[\n";
    for (std::size_t i = 0; i < v.items.size(); ++i) {
      out.append(static_cast<std::size_t>(indent + 2), ' ');
      write_pretty(out, v.items[i], indent + 2);
      out += i + 1 < v.items.size() ? ",\n" : "\n";
    }
    out.append(static_cast<std::size_t>(indent), ' ');
    out += ']';
  } else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.items.size(); ++i) {
      if (i) out += ", ";
      json::write(out, v.items[i]);
    }
    out += ']';
  } else {
    json::write(out, v);
  }
}

}  // namespace manifest_detail

/// manifest.json's text (format "avgrad.av_digits").
inline std::string manifest_json(const Manifest& m) {
  using namespace manifest_detail;
  JsonValue root = jobj();
  put(root, "format", jstr("avgrad.av_digits"));
  put(root, "version", jint(m.version));
  put(root, "seed", jint(static_cast<std::int64_t>(m.seed)));
  JsonValue classes = jarr();
  static const char* kNames[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
  for (const char* c : kNames) classes.items.push_back(jstr(c));
  put(root, "classes", classes);
  JsonValue audio = jobj();
  put(audio, "sample_rate", jint(m.sample_rate));
  put(audio, "samples", jint(m.samples));
  put(audio, "dtype", jstr("F32"));
  put(root, "audio", audio);
  JsonValue video = jobj();
  put(video, "frames", jint(m.frames));
  put(video, "channels", jint(1));
  put(video, "height", jint(m.height));
  put(video, "width", jint(m.width));
  put(video, "dtype", jstr("U8"));
  put(video, "scale", jstr("value / 255 in [0, 1]"));
  put(root, "video", video);
  JsonValue splits = jobj();
  for (const auto& [name, s] : m.splits) {
    JsonValue o = jobj();
    put(o, "count", jint(s.count()));
    JsonValue pc = jarr();
    for (auto c : s.per_class) pc.items.push_back(jint(c));
    put(o, "per_class", pc);
    put(o, "real", jint(s.real));
    put(o, "synthetic", jint(s.synthetic));
    JsonValue shards = jarr();
    for (const auto& sh : s.shards) {
      JsonValue so = jobj();
      put(so, "file", jstr(sh.file));
      put(so, "count", jint(sh.count));
      shards.items.push_back(so);
    }
    put(o, "shards", shards);
    put(splits, name, o);
  }
  put(root, "splits", splits);
  JsonValue speakers = jarr();
  for (std::size_t i = 0; i < m.speakers.size(); ++i) {
    const Speaker& s = m.speakers[i];
    JsonValue o = jobj();
    put(o, "id", jint(static_cast<std::int64_t>(i)));
    put(o, "name", jstr(s.name));
    put(o, "person", jstr(s.person));
    put(o, "language", jstr(s.language));
    put(o, "package", jstr(s.package));
    put(o, "license", jstr(s.license));
    put(o, "synthetic", jbool(s.synthetic));
    put(o, "split", jstr(std::string(split_name(s.split))));
    speakers.items.push_back(o);
  }
  put(root, "speakers", speakers);
  JsonValue sources = jarr();
  for (const auto& s : m.sources) {
    JsonValue o = jobj();
    put(o, "kind", jstr(s.kind));
    put(o, "name", jstr(s.name));
    put(o, "version", jstr(s.version));
    put(o, "role", jstr(s.role));
    put(o, "license", jstr(s.license));
    sources.items.push_back(o);
  }
  put(root, "sources", sources);
  JsonValue opts = jobj();
  for (const auto& [k, v] : m.options) put(opts, k, jstr(v));
  put(root, "options", opts);
  put(root, "build_seconds", jnum(m.build_seconds));
  if (!m.notes.empty()) put(root, "notes", jstr(m.notes));
  std::string out;
  write_pretty(out, root, 0);
  out += '\n';
  return out;
}

/// Parses manifest.json's text; `source` names the file in errors. Checks the format name and
/// version, positive geometry, and every split's shard list (names, non-negative counts,
/// per-class counts summing to the split's count).
inline Manifest parse_manifest(std::string_view text, const std::string& source) {
  using avgrad::detail::json::Value;
  auto fail = [&](const std::string& why) -> void { throw Error("av_digits", source + ": " + why); };
  Value root;
  try {
    root = avgrad::detail::json::parse(text);
  } catch (const Error& e) {
    throw Error("av_digits", source + ": manifest is not valid JSON: " + e.what());
  }
  if (!root.is_object()) fail("manifest is not a JSON object");
  auto need = [&](const Value& o, std::string_view key, Value::Kind kind, std::string_view where) -> const Value& {
    const Value* v = o.find(key);
    if (!v) fail(avgrad::detail::concat("missing \"", key, "\" in ", where));
    const bool ok = kind == Value::Kind::Number ? v->is_number() : v->kind == kind;
    if (!ok)
      fail(avgrad::detail::concat("\"", key, "\" in ", where, " is a ", avgrad::detail::json::kind_name(v->kind),
                                  ", expected a ", avgrad::detail::json::kind_name(kind)));
    return *v;
  };
  const Value& fmt = need(root, "format", Value::Kind::String, "the manifest");
  if (fmt.string != "avgrad.av_digits") fail("format is \"" + fmt.string + "\", expected \"avgrad.av_digits\"");
  Manifest m;
  m.version = static_cast<int>(need(root, "version", Value::Kind::Int, "the manifest").integer);
  if (m.version != kFormatVersion)
    fail(avgrad::detail::concat("format version ", m.version, " is not supported (this reader reads ", kFormatVersion,
                                ")"));
  if (const Value* s = root.find("seed"); s && s->is_int()) m.seed = static_cast<std::uint64_t>(s->integer);
  const Value& audio = need(root, "audio", Value::Kind::Object, "the manifest");
  m.sample_rate = static_cast<int>(need(audio, "sample_rate", Value::Kind::Int, "\"audio\"").integer);
  m.samples = need(audio, "samples", Value::Kind::Int, "\"audio\"").integer;
  const Value& video = need(root, "video", Value::Kind::Object, "the manifest");
  m.frames = static_cast<int>(need(video, "frames", Value::Kind::Int, "\"video\"").integer);
  m.height = static_cast<int>(need(video, "height", Value::Kind::Int, "\"video\"").integer);
  m.width = static_cast<int>(need(video, "width", Value::Kind::Int, "\"video\"").integer);
  if (m.sample_rate <= 0 || m.samples <= 0 || m.frames <= 0 || m.height <= 0 || m.width <= 0 || m.frames > 4096 ||
      m.height > 4096 || m.width > 4096 || m.samples > (1 << 26))
    fail(avgrad::detail::concat("invalid geometry: audio ", m.samples, " samples at ", m.sample_rate, " Hz, video ",
                                m.frames, "x", m.height, "x", m.width));
  const Value& splits = need(root, "splits", Value::Kind::Object, "the manifest");
  for (std::size_t i = 0; i < splits.keys.size(); ++i) {
    const std::string& name = splits.keys[i];
    const Value& so = splits.items[i];
    const std::string where = "split \"" + name + "\"";
    if (!so.is_object()) fail(where + " is not an object");
    SplitInfo si;
    const Value& shards = need(so, "shards", Value::Kind::Array, where);
    for (const Value& sh : shards.items) {
      if (!sh.is_object()) fail(where + ": a shard entry is not an object");
      ShardInfo info{need(sh, "file", Value::Kind::String, where + " shard").string,
                     need(sh, "count", Value::Kind::Int, where + " shard").integer};
      const std::filesystem::path p(info.file);
      if (info.file.empty() || p.is_absolute() || p.has_parent_path() || info.file == "." || info.file == "..")
        fail(where + ": shard file \"" + info.file + "\" must be a plain file name inside the dataset folder");
      if (info.count < 0) fail(avgrad::detail::concat(where, ": shard \"", info.file, "\" has count ", info.count));
      si.shards.push_back(std::move(info));
    }
    if (const Value* pc = so.find("per_class"); pc && pc->is_array()) {
      if (pc->items.size() != kClasses) fail(where + ": per_class must have 10 entries");
      std::int64_t total = 0;
      for (std::size_t c = 0; c < kClasses; ++c) {
        if (!pc->items[c].is_int()) fail(where + ": per_class entries must be integers");
        si.per_class[c] = pc->items[c].integer;
        total += si.per_class[c];
      }
      if (total != si.count())
        fail(avgrad::detail::concat(where, ": per_class counts sum to ", total, " but the shards hold ", si.count()));
    }
    if (const Value* r = so.find("real"); r && r->is_int()) si.real = r->integer;
    if (const Value* s = so.find("synthetic"); s && s->is_int()) si.synthetic = s->integer;
    m.splits.emplace(name, std::move(si));
  }
  if (const Value* sp = root.find("speakers"); sp && sp->is_array())
    for (const Value& s : sp->items) {
      if (!s.is_object()) continue;
      Speaker k;
      if (const Value* v = s.find("name"); v && v->is_string()) k.name = v->string;
      if (const Value* v = s.find("person"); v && v->is_string()) k.person = v->string;
      if (const Value* v = s.find("language"); v && v->is_string()) k.language = v->string;
      if (const Value* v = s.find("package"); v && v->is_string()) k.package = v->string;
      if (const Value* v = s.find("license"); v && v->is_string()) k.license = v->string;
      if (const Value* v = s.find("synthetic"); v && v->kind == Value::Kind::Bool) k.synthetic = v->boolean;
      if (const Value* v = s.find("split"); v && v->is_string()) k.split = parse_split(v->string);
      m.speakers.push_back(std::move(k));
    }
  if (const Value* so = root.find("sources"); so && so->is_array())
    for (const Value& s : so->items) {
      if (!s.is_object()) continue;
      SourceInfo k;
      auto get = [&](const char* key, std::string& out) {
        if (const Value* v = s.find(key); v && v->is_string()) out = v->string;
      };
      get("kind", k.kind), get("name", k.name), get("version", k.version), get("role", k.role),
          get("license", k.license);
      m.sources.push_back(std::move(k));
    }
  if (const Value* o = root.find("options"); o && o->is_object())
    for (std::size_t i = 0; i < o->keys.size(); ++i)
      if (o->items[i].is_string()) m.options[o->keys[i]] = o->items[i].string;
  if (const Value* b = root.find("build_seconds"); b && b->is_number()) m.build_seconds = b->as_double();
  if (const Value* n = root.find("notes"); n && n->is_string()) m.notes = n->string;
  return m;
}

/// Reads and parses <dir>/manifest.json; errors name the file.
inline Manifest read_manifest(const std::filesystem::path& dir) {
  const std::filesystem::path p = dir / "manifest.json";
  std::error_code ec;
  if (!std::filesystem::exists(p, ec))
    throw Error("av_digits", p.string() +
                                 ": manifest not found (is this an AV-Digits folder? build it with "
                                 "examples/build_av_digits)");
  const std::vector<std::uint8_t> bytes = read_file_bytes(p, "av_digits");
  return parse_manifest(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), p.string());
}

/// Writes <dir>/manifest.json atomically.
inline void write_manifest(const std::filesystem::path& dir, const Manifest& m) {
  write_file_atomic(dir / "manifest.json", manifest_json(m));
}

// ---- shards ------------------------------------------------------------------------------

/// The samples of one shard, flat, in the layout described at the top of this header.
struct ShardData {
  int frames = 8, height = 32, width = 32;
  std::int64_t samples = kClipSamples;
  std::vector<float> audio;         ///< n · samples
  std::vector<std::uint8_t> video;  ///< n · frames · height · width
  std::vector<std::int64_t> label, speaker, image;
  std::vector<std::uint8_t> synthetic;
  std::int64_t size() const { return static_cast<std::int64_t>(label.size()); }
};

/// Writes one shard atomically; checks that the arrays agree in length and labels are 0..9.
inline void write_shard(const std::filesystem::path& path, const ShardData& d) {
  const std::int64_t n = d.size(), fr = static_cast<std::int64_t>(d.frames) * d.height * d.width;
  AVGRAD_CHECK(static_cast<std::int64_t>(d.audio.size()) == n * d.samples &&
                   static_cast<std::int64_t>(d.video.size()) == n * fr &&
                   static_cast<std::int64_t>(d.speaker.size()) == n && static_cast<std::int64_t>(d.image.size()) == n &&
                   static_cast<std::int64_t>(d.synthetic.size()) == n,
               "av_digits", path.string(), ": shard arrays disagree in length for ", n, " samples");
  for (std::int64_t i = 0; i < n; ++i)
    AVGRAD_CHECK(d.label[static_cast<std::size_t>(i)] >= 0 && d.label[static_cast<std::size_t>(i)] < kClasses,
                 "av_digits", path.string(), ": label ", d.label[static_cast<std::size_t>(i)], " of sample ", i,
                 " is out of range [0, 10)");
  SafetensorsWriter w;
  w.add("audio", from_vector<float>(d.audio, Shape{n, d.samples}));
  w.add("video", from_vector<std::uint8_t>(d.video, Shape{n, d.frames, 1, d.height, d.width}));
  w.add("label", from_vector<std::int64_t>(d.label, Shape{n}));
  w.add("speaker", from_vector<std::int64_t>(d.speaker, Shape{n}));
  w.add("image", from_vector<std::int64_t>(d.image, Shape{n}));
  w.add("synthetic", from_vector<std::uint8_t>(d.synthetic, Shape{n}));
  w.write(path, {{"avgrad.format_version", "1"}, {"avgrad.dataset", "av_digits"}});
}

}  // namespace avgrad::av_digits

namespace avgrad {

/// One AV-Digits sample.
struct AvDigitsSample {
  Tensor<float, Cpu> audio;  ///< (16000) waveform at 16 kHz
  Tensor<float, Cpu> video;  ///< (T, 1, H, W) in [0, 1]
  std::int64_t label = 0;
  std::int64_t speaker = 0;  ///< index into the manifest's speakers
  bool synthetic = false;
  std::int64_t image = 0;  ///< label · 100000 + digit image index within its class
};

/// A batch: audio (B, 16000), video (B, T, 1, H, W), labels/speakers/images (B) int64,
/// synthetic (B) uint8.
struct AvDigitsBatch {
  Tensor<float, Cpu> audio, video;
  Tensor<std::int64_t, Cpu> labels, speakers, images;
  Tensor<std::uint8_t, Cpu> synthetic;
  std::int64_t size() const { return labels.defined() ? labels.numel() : 0; }
};

/// One split of an AV-Digits folder, held in memory (shards are read whole and validated on
/// open). Copies share the loaded data. get() and label() are const and thread-safe.
class AvDigits {
 public:
  using sample_type = AvDigitsSample;
  using batch_type = AvDigitsBatch;

  /// Opens split "train", "val" or "test" of the dataset in `dir`. Throws avgrad::Error naming
  /// the file and the reason for: a missing or malformed manifest, an unknown split, a missing,
  /// truncated or corrupt shard, tensors with the wrong dtype or shape, a shard whose sample
  /// count differs from the manifest, and labels outside [0, 10).
  static AvDigits open(const std::filesystem::path& dir, std::string_view split) {
    const av_digits::Split sp = av_digits::parse_split(split);
    AvDigits d;
    d.m_ = std::make_shared<const av_digits::Manifest>(av_digits::read_manifest(dir));
    const std::string mpath = (dir / "manifest.json").string();
    const std::string name(av_digits::split_name(sp));
    const auto it = d.m_->splits.find(name);
    AVGRAD_CHECK(it != d.m_->splits.end(), "av_digits", mpath, ": the manifest has no split \"", name, "\"");
    const av_digits::Manifest& m = *d.m_;
    const std::int64_t frame_elems = static_cast<std::int64_t>(m.frames) * m.height * m.width;
    for (const av_digits::ShardInfo& info : it->second.shards) {
      const std::filesystem::path p = dir / info.file;
      const std::string ps = p.string();
      Shard s;
      s.file = std::make_shared<const SafetensorsFile>(SafetensorsFile::open(p));
      const SafetensorsFile& f = *s.file;
      auto expect = [&](const char* tensor, const char* dtype, const std::vector<std::int64_t>& shape) {
        AVGRAD_CHECK(f.has(tensor), "av_digits", ps, ": no tensor \"", tensor, "\" (not an AV-Digits shard?)");
        const TensorEntry& e = f.entry(tensor);
        AVGRAD_CHECK(e.dtype == dtype, "av_digits", ps, ": tensor \"", tensor, "\" is ", e.dtype, ", expected ", dtype);
        AVGRAD_CHECK(e.shape == shape, "av_digits", ps, ": tensor \"", tensor, "\" has shape ", Shape(e.shape),
                     ", expected ", Shape(shape), " from the manifest");
      };
      const std::int64_t n = info.count;
      expect("audio", "F32", {n, m.samples});
      expect("video", "U8", {n, m.frames, 1, m.height, m.width});
      expect("label", "I64", {n});
      expect("speaker", "I64", {n});
      expect("image", "I64", {n});
      expect("synthetic", "U8", {n});
      s.begin = d.size_;
      s.count = n;
      s.audio = f.raw("audio").data();
      s.video = f.raw("video").data();
      const auto labels = f.get<std::int64_t>("label").to_vector();
      for (std::int64_t i = 0; i < n; ++i)
        AVGRAD_CHECK(labels[static_cast<std::size_t>(i)] >= 0 && labels[static_cast<std::size_t>(i)] < 10, "av_digits",
                     ps, ": label ", labels[static_cast<std::size_t>(i)], " of sample ", i, " is out of range [0, 10)");
      const auto speakers = f.get<std::int64_t>("speaker").to_vector();
      const auto images = f.get<std::int64_t>("image").to_vector();
      const auto synth = f.get<std::uint8_t>("synthetic").to_vector();
      d.labels_.insert(d.labels_.end(), labels.begin(), labels.end());
      d.speakers_.insert(d.speakers_.end(), speakers.begin(), speakers.end());
      d.images_.insert(d.images_.end(), images.begin(), images.end());
      d.synthetic_.insert(d.synthetic_.end(), synth.begin(), synth.end());
      d.size_ += n;
      d.shards_.push_back(std::move(s));
    }
    d.frame_elems_ = frame_elems;
    return d;
  }

  std::int64_t size() const { return size_; }
  std::int64_t label(std::int64_t i) const {
    check_index(i);
    return labels_[static_cast<std::size_t>(i)];
  }
  std::int64_t speaker(std::int64_t i) const {
    check_index(i);
    return speakers_[static_cast<std::size_t>(i)];
  }
  bool synthetic(std::int64_t i) const {
    check_index(i);
    return synthetic_[static_cast<std::size_t>(i)] != 0;
  }
  const av_digits::Manifest& manifest() const { return *m_; }
  int frames() const { return m_->frames; }
  int height() const { return m_->height; }
  int width() const { return m_->width; }

  sample_type get(std::int64_t i) const {
    check_index(i);
    // The shard holding i: the last one starting at or before i.
    const auto it =
        std::upper_bound(shards_.begin(), shards_.end(), i, [](std::int64_t v, const Shard& s) { return v < s.begin; });
    const Shard& s = *(it - 1);
    const std::int64_t k = i - s.begin;
    sample_type out;
    out.audio = Tensor<float, Cpu>::empty(Shape{m_->samples});
    const std::uint8_t* a = s.audio + static_cast<std::size_t>(k * m_->samples) * 4;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out.audio.data(), a, static_cast<std::size_t>(m_->samples) * 4);
    } else {
      for (std::int64_t j = 0; j < m_->samples; ++j)
        out.audio.data()[j] = avgrad::detail::load_le<float>(a + static_cast<std::size_t>(j) * 4);
    }
    out.video = Tensor<float, Cpu>::empty(Shape{m_->frames, 1, m_->height, m_->width});
    const std::uint8_t* v = s.video + static_cast<std::size_t>(k * frame_elems_);
    float* dst = out.video.data();
    for (std::int64_t j = 0; j < frame_elems_; ++j) dst[j] = static_cast<float>(v[j]) * (1.0f / 255.0f);
    out.label = labels_[static_cast<std::size_t>(i)];
    out.speaker = speakers_[static_cast<std::size_t>(i)];
    out.synthetic = synthetic_[static_cast<std::size_t>(i)] != 0;
    out.image = images_[static_cast<std::size_t>(i)];
    return out;
  }

  /// Stacks samples (all of one geometry) into a batch.
  static batch_type collate(std::vector<sample_type>&& samples) {
    AVGRAD_CHECK(!samples.empty(), "av_digits", "collate needs at least one sample");
    const auto B = static_cast<std::int64_t>(samples.size());
    const Shape as = samples[0].audio.shape(), vs = samples[0].video.shape();
    std::vector<std::int64_t> ab = as.vec(), vb = vs.vec();
    ab.insert(ab.begin(), B);
    vb.insert(vb.begin(), B);
    batch_type b;
    b.audio = Tensor<float, Cpu>::empty(ab);
    b.video = Tensor<float, Cpu>::empty(vb);
    std::vector<std::int64_t> labels, speakers, images;
    std::vector<std::uint8_t> synth;
    const std::int64_t an = as.numel(), vn = vs.numel();
    for (std::int64_t i = 0; i < B; ++i) {
      sample_type& s = samples[static_cast<std::size_t>(i)];
      AVGRAD_CHECK(s.audio.shape() == as && s.video.shape() == vs, "av_digits", "collate: sample ", i, " has audio ",
                   s.audio.shape(), " and video ", s.video.shape(), ", sample 0 has ", as, " and ", vs);
      // to_vector gathers strided tensors; the samples get() returns are contiguous already.
      auto copy_into = [](const Tensor<float, Cpu>& t, float* dst) {
        if (t.is_contiguous()) {
          std::memcpy(dst, t.data(), static_cast<std::size_t>(t.numel()) * sizeof(float));
        } else {
          const std::vector<float> v = t.to_vector();
          std::copy(v.begin(), v.end(), dst);
        }
      };
      copy_into(s.audio, b.audio.data() + i * an);
      copy_into(s.video, b.video.data() + i * vn);
      labels.push_back(s.label);
      speakers.push_back(s.speaker);
      images.push_back(s.image);
      synth.push_back(s.synthetic ? 1 : 0);
    }
    b.labels = from_vector<std::int64_t>(labels, Shape{B});
    b.speakers = from_vector<std::int64_t>(speakers, Shape{B});
    b.images = from_vector<std::int64_t>(images, Shape{B});
    b.synthetic = from_vector<std::uint8_t>(synth, Shape{B});
    return b;
  }

 private:
  struct Shard {
    std::shared_ptr<const SafetensorsFile> file;  ///< owns the bytes audio/video point into
    std::int64_t begin = 0, count = 0;
    const std::uint8_t* audio = nullptr;
    const std::uint8_t* video = nullptr;
  };

  void check_index(std::int64_t i) const {
    AVGRAD_CHECK(i >= 0 && i < size_, "av_digits", "index ", i, " out of range for a split of ", size_, " samples");
  }

  std::shared_ptr<const av_digits::Manifest> m_;
  std::vector<Shard> shards_;
  std::vector<std::int64_t> labels_, speakers_, images_;
  std::vector<std::uint8_t> synthetic_;
  std::int64_t size_ = 0, frame_elems_ = 0;
};

}  // namespace avgrad
