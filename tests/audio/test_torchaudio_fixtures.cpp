// The audio front-end against torchaudio 0.13: every case of fixtures/frontend_cases.json
// (written with its outputs by fixtures/make_frontend_fixtures.py) is rebuilt from
// torchaudio's keyword arguments and compared.
//
// Tolerances: linear outputs match to 1e-4 of the case's largest magnitude. Log-domain
// outputs (log fbank, dB) match to 1e-3 absolute wherever float32 resolves them: within
// 60 dB of their frame's peak power. Below that, a float32 FFT's rounding (≈1e-7 of the
// frame's peak amplitude) is as large as the value itself — torchaudio's own float32
// result is noise there — so those elements are compared in the linear domain (1e-4 of
// the frame's peak). Cepstra mix every log-mel bin of a frame, noise-level ones included,
// so they match to 1e-3 + 5e-4 of the case's largest magnitude.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "avgrad/audio/kaldi.hpp"
#include "avgrad/audio/mel.hpp"
#include "avgrad/data/detail/json.hpp"
#include "avgrad/data/npy.hpp"

namespace {

using namespace avgrad;
using namespace avgrad::audio;
namespace json = avgrad::detail::json;
namespace fs = std::filesystem;
using TF = Tensor<float, Cpu>;

const fs::path kFixtures = fs::path(__FILE__).parent_path() / "fixtures";

/// Keyword arguments of one case; every key must be consumed, so a case that sets an
/// option this mapping ignores fails instead of silently comparing something else.
class Kwargs {
 public:
  explicit Kwargs(const json::Value* v) : v_(v) {}
  bool has(const std::string& k) const { return v_ && v_->find(k) && v_->find(k)->kind != json::Value::Kind::Null; }
  double num(const std::string& k, double def) { return has(k) ? use(k).as_double() : (mark(k), def); }
  std::int64_t integer(const std::string& k, std::int64_t def) {
    return has(k) ? static_cast<std::int64_t>(use(k).as_double()) : (mark(k), def);
  }
  bool flag(const std::string& k, bool def) { return has(k) ? use(k).boolean : (mark(k), def); }
  std::string str(const std::string& k, const std::string& def) { return has(k) ? use(k).string : (mark(k), def); }
  Kwargs sub(const std::string& k) { return Kwargs(has(k) ? &use(k) : nullptr); }
  /// Keys present but never read.
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    if (!v_) return out;
    for (const auto& k : v_->keys)
      if (!used_.count(k)) out.push_back(k);
    return out;
  }
  void mark(const std::string& k) { used_.insert(k); }

 private:
  const json::Value& use(const std::string& k) {
    used_.insert(k);
    return *v_->find(k);
  }
  const json::Value* v_;
  std::set<std::string> used_;
};

kaldi::FbankOptions fbank_options(Kwargs& a) {
  kaldi::FbankOptions o;
  o.sample_frequency = a.num("sample_frequency", o.sample_frequency);
  o.frame_length_ms = a.num("frame_length", o.frame_length_ms);
  o.frame_shift_ms = a.num("frame_shift", o.frame_shift_ms);
  o.snip_edges = a.flag("snip_edges", o.snip_edges);
  o.round_to_power_of_two = a.flag("round_to_power_of_two", o.round_to_power_of_two);
  o.dither = a.num("dither", o.dither);
  o.remove_dc_offset = a.flag("remove_dc_offset", o.remove_dc_offset);
  o.preemphasis_coefficient = a.num("preemphasis_coefficient", o.preemphasis_coefficient);
  o.window_type = parse_window(a.str("window_type", "povey"));
  o.blackman_coeff = a.num("blackman_coeff", o.blackman_coeff);
  o.num_mel_bins = a.integer("num_mel_bins", o.num_mel_bins);
  o.low_freq = a.num("low_freq", o.low_freq);
  o.high_freq = a.num("high_freq", o.high_freq);
  o.use_power = a.flag("use_power", o.use_power);
  o.use_log_fbank = a.flag("use_log_fbank", o.use_log_fbank);
  o.use_energy = a.flag("use_energy", o.use_energy);
  o.raw_energy = a.flag("raw_energy", o.raw_energy);
  o.energy_floor = a.num("energy_floor", o.energy_floor);
  o.htk_compat = a.flag("htk_compat", o.htk_compat);
  o.subtract_mean = a.flag("subtract_mean", o.subtract_mean);
  return o;
}

StftOptions stft_options(Kwargs& a) {
  StftOptions o;
  o.n_fft = a.integer("n_fft", o.n_fft);
  o.win_length = a.integer("win_length", -1);
  o.hop = a.integer("hop_length", -1);
  o.center = a.flag("center", true);
  const std::string pm = a.str("pad_mode", "reflect");
  o.pad_mode = pm == "reflect" ? PadMode::reflect : pm == "constant" ? PadMode::constant : PadMode::replicate;
  o.normalized = a.flag("normalized", false);
  o.window = parse_window(a.str("window_fn", "hann"));
  Kwargs w = a.sub("wkwargs");
  o.symmetry = w.flag("periodic", true) ? Symmetry::periodic : Symmetry::symmetric;
  EXPECT_TRUE(w.unused().empty());
  return o;
}

MelSpectrogramOptions mel_options(Kwargs& a) {
  MelSpectrogramOptions o;
  o.sample_rate = a.num("sample_rate", 16000);
  o.stft = stft_options(a);
  o.power = a.num("power", 2.0);
  o.n_mels = a.integer("n_mels", 128);
  o.f_min = a.num("f_min", 0.0);
  o.f_max = a.num("f_max", -1.0);
  o.scale = a.str("mel_scale", "htk") == "slaney" ? MelScale::slaney : MelScale::htk;
  o.slaney_norm = a.str("norm", "") == "slaney";
  return o;
}

/// How an output relates to the linear spectrum it compresses (for the noise-aware
/// comparison); `amplitude` marks a magnitude spectrum (resolvable down to 1e-3 of the
/// peak instead of 1e-6 for power), e.g. the reference recipe's dB of |STFT| mel.
enum class Domain { linear, ln, db10, db20, cepstral };

struct Result {
  TF value;
  Domain domain = Domain::linear;
  bool amplitude = false;  ///< the linear quantity is a magnitude, not a power
};

Result evaluate(const std::string& fn, Kwargs& a, const TF& x) {
  if (fn == "kaldi.fbank") {
    const auto o = fbank_options(a);
    return {kaldi::fbank(x, o), o.use_log_fbank ? Domain::ln : Domain::linear, !o.use_power};
  }
  if (fn == "kaldi.mfcc") {
    kaldi::MfccOptions o;
    o.num_ceps = a.integer("num_ceps", o.num_ceps);
    o.cepstral_lifter = a.num("cepstral_lifter", o.cepstral_lifter);
    o.fbank = fbank_options(a);
    return {kaldi::mfcc(x, o), Domain::cepstral};
  }
  if (fn == "Spectrogram" || fn == "Spectrogram.complex") {
    const auto o = stft_options(a);
    if (fn == "Spectrogram.complex") {
      a.mark("power");
      return {stft(x, o)};
    }
    return {spectrogram(x, o, a.num("power", 2.0))};
  }
  if (fn == "MelSpectrogram") return {MelSpectrogram<float>(mel_options(a))(x)};
  if (fn == "MelSpectrogram+AmplitudeToDB") {
    Kwargs m = a.sub("mel"), d = a.sub("db");
    const auto mo = mel_options(m);
    const TF mel = MelSpectrogram<float>(mo)(x);
    DbOptions o;
    o.top_db = d.has("top_db") ? std::optional<double>(d.num("top_db", 0)) : (d.mark("top_db"), std::nullopt);
    const bool power = d.str("stype", "power") == "power";
    EXPECT_TRUE(m.unused().empty() && d.unused().empty());
    return {power ? power_to_db(mel, o) : amplitude_to_db(mel, o), power ? Domain::db10 : Domain::db20,
            mo.power == 1.0};
  }
  if (fn == "MFCC") {
    MfccOptions o;
    o.n_mfcc = a.integer("n_mfcc", o.n_mfcc);
    o.log_mels = a.flag("log_mels", false);
    Kwargs m = a.sub("melkwargs");
    o.mel = mel_options(m);
    o.mel.sample_rate = a.num("sample_rate", 16000);
    EXPECT_TRUE(m.unused().empty());
    return {Mfcc<float>(o)(x), Domain::cepstral};
  }
  if (fn == "melscale_fbanks") {
    MelOptions o;
    o.n_freqs = a.integer("n_freqs", 0);
    o.f_min = a.num("f_min", 0);
    o.f_max = a.num("f_max", 0);
    o.n_mels = a.integer("n_mels", 0);
    o.sample_rate = a.num("sample_rate", 0);
    o.scale = a.str("mel_scale", "htk") == "slaney" ? MelScale::slaney : MelScale::htk;
    o.slaney_norm = a.str("norm", "") == "slaney";
    return {mel_filterbank<float>(o)};
  }
  if (fn == "kaldi.get_mel_banks") {
    const std::int64_t bins = a.integer("num_bins", 0), padded = a.integer("window_length_padded", 0);
    EXPECT_EQ(a.num("vtln_warp_factor", 1.0), 1.0);
    a.mark("vtln_low");
    a.mark("vtln_high");
    const TF fb =
        kaldi_mel_filterbank<float>(bins, padded, a.num("sample_freq", 0), a.num("low_freq", 0), a.num("high_freq", 0));
    // torchaudio returns (num_bins, padded/2) without the (zero) Nyquist row
    return {fb.narrow(0, 0, padded / 2).t().contiguous()};
  }
  if (fn == "window") {
    const std::string type = a.str("type", "");
    const bool kaldi_window = a.flag("kaldi", false), periodic = a.flag("periodic", true);
    const auto sym = kaldi_window || !periodic ? Symmetry::symmetric : Symmetry::periodic;
    return {window<float>(parse_window(type), a.integer("length", 0), sym)};
  }
  ADD_FAILURE() << "unknown fixture function " << fn;
  return {};
}

json::Value load_cases() {
  std::ifstream in(kFixtures / "frontend_cases.json", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

class TorchaudioFixtures : public ::testing::TestWithParam<std::size_t> {
 public:
  static const json::Value& cases() {
    static const json::Value c = load_cases();
    return c;
  }
  static const NpzFile& arrays() {
    static const NpzFile f = NpzFile::open(kFixtures / "frontend.npz");
    return f;
  }
};

TEST_P(TorchaudioFixtures, Matches) {
  const json::Value& c = cases().items[GetParam()];
  const std::string name = c.find("name")->string, fn = c.find("fn")->string;
  SCOPED_TRACE(name);
  const json::Value* sig = c.find("signal");
  TF x = sig && sig->is_string() ? arrays().get<float>("signal/" + sig->string) : TF();
  Kwargs kw(c.find("kwargs"));
  const Result r = evaluate(fn, kw, x);
  EXPECT_TRUE(kw.unused().empty()) << "kwargs not mapped: " << kw.unused().front();
  const TF expected = arrays().get<float>(name + "/out");
  ASSERT_TRUE(r.value.defined());
  ASSERT_EQ(r.value.shape(), expected.shape());
  const auto got = r.value.to_vector(), want = expected.to_vector();
  double scale = 0;
  for (float v : want) scale = std::max(scale, std::abs(static_cast<double>(v)));
  // linear value of a log-domain element (power for ln/db10, amplitude for db20)
  auto linear = [&](double v) {
    switch (r.domain) {
      case Domain::ln:
        return std::exp(v);
      case Domain::db10:
        return std::pow(10.0, v / 10);
      case Domain::db20:
        return std::pow(10.0, v / 20);
      default:
        return v;
    }
  };
  const std::int64_t width = expected.dim() >= 1 ? expected.shape()[expected.dim() - 1] : 1;
  double worst = 0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    double ratio;  // error / tolerance
    if (r.domain == Domain::linear) {
      ratio = std::abs(g - w) / (1e-4 * scale + 1e-30);
    } else if (r.domain == Domain::cepstral) {
      ratio = std::abs(g - w) / (1e-3 + 5e-4 * scale);
    } else {
      const std::size_t row = i / static_cast<std::size_t>(width) * static_cast<std::size_t>(width);
      double peak = 0;
      for (std::int64_t k = 0; k < width; ++k) peak = std::max(peak, linear(want[row + static_cast<std::size_t>(k)]));
      const double resolvable = (r.amplitude ? 1e-3 : 1e-6) * peak;  // 60 dB below the frame peak
      if (linear(w) >= resolvable)
        ratio = std::abs(g - w) / (1e-3 + 1e-5 * std::abs(w));
      else
        ratio = std::abs(linear(g) - linear(w)) / (1e-4 * peak + 1e-30);
    }
    if (ratio > worst) {
      worst = ratio;
      worst_at = i;
    }
  }
  EXPECT_LE(worst, 1.0) << "worst element " << worst_at << ": got " << got[worst_at] << ", torchaudio "
                        << want[worst_at] << " (scale " << scale << ")";
}

std::string case_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string n = TorchaudioFixtures::cases().items[info.param].find("name")->string;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Cases, TorchaudioFixtures,
                         ::testing::Range<std::size_t>(0, TorchaudioFixtures::cases().items.size()), case_name);

TEST(TorchaudioFixtures, CoverEveryFunction) {
  std::set<std::string> fns;
  for (const auto& c : TorchaudioFixtures::cases().items) fns.insert(c.find("fn")->string);
  for (const char* f : {"kaldi.fbank", "kaldi.mfcc", "Spectrogram", "Spectrogram.complex", "MelSpectrogram",
                        "MelSpectrogram+AmplitudeToDB", "MFCC", "melscale_fbanks", "kaldi.get_mel_banks", "window"})
    EXPECT_TRUE(fns.count(f)) << f;
}

}  // namespace
