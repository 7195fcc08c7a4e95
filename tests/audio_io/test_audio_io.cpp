// Tests of the optional audio component: libsndfile reading/writing, error reporting, atomic writes, soxr resampling.
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "avgrad/audio/io.hpp"
#include "avgrad/audio/resample.hpp"
#include "support/expect_error.hpp"

// libsndfile 1.2.0 leaks libvorbis' vorbis_info when it refuses a truncated Ogg file (the
// handle is never returned, so nothing here can free it). LeakSanitizer reads this hook in
// sanitizer builds; in other builds it is an unused function.
extern "C" const char* __lsan_default_suppressions() { return "leak:vorbis_info_init\n"; }

namespace {

namespace fs = std::filesystem;
using avgrad::Cpu;
using avgrad::Shape;
using avgrad::Tensor;
using avgrad::testing::expect_error;
using namespace avgrad::audio;

constexpr double kPi = std::numbers::pi;

std::vector<float> sine(double freq, double rate, std::int64_t n, double amp = 0.5, double phase = 0.0) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = static_cast<float>(amp * std::sin(2 * kPi * freq * double(i) / rate + phase));
  return v;
}

Tensor<float, Cpu> planar(const std::vector<std::vector<float>>& channels) {
  const auto c = static_cast<std::int64_t>(channels.size());
  const auto n = static_cast<std::int64_t>(channels[0].size());
  auto t = Tensor<float, Cpu>::empty(Shape{c, n});
  for (std::int64_t i = 0; i < c; ++i)
    std::copy(channels[static_cast<std::size_t>(i)].begin(), channels[static_cast<std::size_t>(i)].end(),
              t.data() + i * n);
  return t;
}

/// Row `c` of a (C, n) tensor.
std::vector<float> row(const Tensor<float, Cpu>& t, std::int64_t c) {
  const std::int64_t n = t.size(1);
  return std::vector<float>(t.data() + c * n, t.data() + (c + 1) * n);
}

/// Normalised correlation of a[from, to) and b[from, to).
double correlation(const std::vector<float>& a, const std::vector<float>& b, std::size_t from, std::size_t to) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = from; i < to; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

double rms(const std::vector<float>& a, std::size_t from, std::size_t to) {
  double s = 0;
  for (std::size_t i = from; i < to; ++i) s += double(a[i]) * a[i];
  return std::sqrt(s / double(to - from));
}

std::vector<char> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Writes interleaved float frames with libsndfile directly (formats the API does not write).
void sndfile_write(const fs::path& p, int format, int rate, int channels, const std::vector<float>& interleaved) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  const auto frames = static_cast<sf_count_t>(interleaved.size() / static_cast<std::size_t>(channels));
  EXPECT_EQ(sf_writef_float(f, interleaved.data(), frames), frames);
  EXPECT_EQ(sf_close(f), 0);
}

std::vector<fs::path> entries(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  return out;
}

class AudioIo : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / (std::string("avgrad_audio_io_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path path(const std::string& name) const { return dir_ / name; }
  fs::path dir_;
};

// ---- writing and reading back ----------------------------------------------------

TEST_F(AudioIo, WavPcm16RoundTripWithinHalfAStepAndExactOnTheGrid) {
  const std::int64_t n = 1000;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(n), b(n);
  for (auto& v : a) v = u(rng);
  for (std::int64_t i = 0; i < n; ++i) b[static_cast<std::size_t>(i)] = static_cast<float>(i - 500) / 32768.0f;
  const auto p = path("pcm16.wav");
  write_wav(p, planar({a, b}), 22050, WavEncoding::pcm16);

  const AudioInfo info = audio_info(p);
  EXPECT_EQ(info.frames, n);
  EXPECT_EQ(info.channels, 2);
  EXPECT_EQ(info.sample_rate, 22050);
  EXPECT_EQ(info.format, "WAV PCM_16");

  const Audio au = read_audio(p, {.channels = Channels::all});
  EXPECT_EQ(au.sample_rate, 22050);
  ASSERT_EQ(au.samples.shape(), (Shape{2, n}));
  const auto ra = row(au.samples, 0), rb = row(au.samples, 1);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    EXPECT_NEAR(ra[k], a[k], 0.5 / 32768 + 1e-7) << i;
    EXPECT_EQ(rb[k], b[k]) << i;  // values on the 16-bit grid survive exactly
  }
}

TEST_F(AudioIo, PcmClipsOutOfRangeValues) {
  const auto p = path("clip.wav");
  write_wav(p, avgrad::from_vector<float>({1.5f, -2.0f, 1.0f, -1.0f, 0.25f}), 8000);
  const auto v = read_audio(p).samples.to_vector();
  EXPECT_EQ(v, (std::vector<float>{32767.0f / 32768, -1.0f, 32767.0f / 32768, -1.0f, 0.25f}));
}

TEST_F(AudioIo, WavPcm24RoundTrip) {
  const auto x = sine(440, 48000, 4800, 0.9);
  const auto p = path("pcm24.wav");
  write_wav(p, planar({x}), 48000, WavEncoding::pcm24);
  EXPECT_EQ(audio_info(p).format, "WAV PCM_24");
  const auto y = read_audio(p).samples.to_vector();
  ASSERT_EQ(y.size(), x.size());
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - x[i]));
  EXPECT_LE(worst, 0.5 / 8388608 + 6e-8);
  EXPECT_GT(worst, 0.0);  // really quantised to 24 bits, not stored as float
}

TEST_F(AudioIo, WavFloat32IsExactAndUnclipped) {
  std::vector<float> x = sine(1000, 16000, 1600, 0.7);
  x[3] = 1.75f;
  x[4] = -3.5f;
  const auto p = path("float.wav");
  write_wav(p, planar({x}), 16000, WavEncoding::float32);
  EXPECT_EQ(audio_info(p).format, "WAV FLOAT");
  EXPECT_EQ(read_audio(p).samples.to_vector(), x);
}

TEST_F(AudioIo, RankOneTensorIsWrittenAsMono) {
  const auto x = sine(300, 8000, 800);
  const auto p = path("mono.wav");
  write_wav(p, avgrad::from_vector<float>(x), 8000, WavEncoding::float32);
  const Audio au = read_audio(p, {.channels = Channels::all});
  EXPECT_EQ(au.samples.shape(), (Shape{1, 800}));
  EXPECT_EQ(au.samples.to_vector(), x);
}

TEST_F(AudioIo, MixAveragesAndSelectPicksOneChannel) {
  const auto left = sine(440, 16000, 1600, 0.5);
  const auto right = sine(660, 16000, 1600, 0.25, 1.0);
  const auto p = path("stereo.wav");
  write_wav(p, planar({left, right}), 16000, WavEncoding::float32);

  const auto mixed = read_audio(p);  // default: mix
  ASSERT_EQ(mixed.samples.shape(), (Shape{1, 1600}));
  const auto m = mixed.samples.to_vector();
  for (std::size_t i = 0; i < m.size(); ++i) EXPECT_FLOAT_EQ(m[i], 0.5f * (left[i] + right[i])) << i;

  const auto sel = read_audio(p, {.channels = Channels::select, .channel = 1});
  ASSERT_EQ(sel.samples.shape(), (Shape{1, 1600}));
  EXPECT_EQ(sel.samples.to_vector(), right);
  EXPECT_EQ(read_audio(p, {.channels = Channels::select, .channel = 0}).samples.to_vector(), left);

  const auto all = read_audio(p, {.channels = Channels::all});
  EXPECT_EQ(row(all.samples, 0), left);
  EXPECT_EQ(row(all.samples, 1), right);

  expect_error([&] { read_audio(p, {.channels = Channels::select, .channel = 2}); },
               {"read_audio", p.string(), "channel 2 out of range", "2 channel(s)"});
  expect_error([&] { read_audio(p, {.channels = Channels::select, .channel = -1}); }, {p.string(), "channel -1"});
}

TEST_F(AudioIo, OffsetAndFramesSelectAWindow) {
  const auto x = sine(250, 8000, 1000);
  const auto p = path("window.wav");
  write_wav(p, planar({x}), 8000, WavEncoding::float32);

  const auto w = read_audio(p, {.offset = 100, .frames = 50}).samples;
  ASSERT_EQ(w.shape(), (Shape{1, 50}));
  EXPECT_EQ(w.to_vector(), std::vector<float>(x.begin() + 100, x.begin() + 150));
  const auto tail = read_audio(p, {.offset = 900}).samples;
  EXPECT_EQ(tail.to_vector(), std::vector<float>(x.begin() + 900, x.end()));
  EXPECT_EQ(read_audio(p, {.offset = 1000}).samples.shape(), (Shape{1, 0}));
  EXPECT_EQ(read_audio(p, {.offset = 0, .frames = 0}).samples.shape(), (Shape{1, 0}));

  expect_error([&] { read_audio(p, {.offset = 1001}); }, {p.string(), "offset 1001 is past the end", "1000 frames"});
  expect_error([&] { read_audio(p, {.offset = -1}); }, {p.string(), "offset -1"});
  expect_error([&] { read_audio(p, {.offset = 990, .frames = 20}); },
               {p.string(), "20 frames requested at offset 990"});
  expect_error([&] { read_audio(p, {.frames = -2}); }, {p.string(), "frames must be"});
}

TEST_F(AudioIo, FlacRoundTripIsLosslessAt16And24Bits) {
  const auto x = sine(440, 44100, 44100, 0.8);
  const auto y = sine(523.25, 44100, 44100, 0.3);
  const auto wav = path("ref.wav"), flac16 = path("a.flac"), flac24 = path("b.flac");
  write_wav(wav, planar({x, y}), 44100, WavEncoding::pcm16);
  write_audio(flac16, planar({x, y}), 44100, AudioFormat::flac_pcm16);
  write_audio(flac24, planar({x, y}), 44100, AudioFormat::flac_pcm24);
  EXPECT_EQ(audio_info(flac16).format, "FLAC PCM_16");
  EXPECT_EQ(audio_info(flac24).format, "FLAC PCM_24");
  EXPECT_LT(fs::file_size(flac16), fs::file_size(wav));  // really compressed

  const auto ref = read_audio(wav, {.channels = Channels::all}).samples.to_vector();
  const auto a = read_audio(flac16, {.channels = Channels::all});
  EXPECT_EQ(a.sample_rate, 44100);
  EXPECT_EQ(a.samples.shape(), (Shape{2, 44100}));
  EXPECT_EQ(a.samples.to_vector(), ref);  // same 16-bit codes as the WAV

  const auto b = read_audio(flac24, {.channels = Channels::all});
  const auto bx = row(b.samples, 0);
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(bx[i], x[i], 0.5 / 8388608 + 6e-8) << i;
  // Seeking inside a FLAC stream lands on the right frame.
  EXPECT_EQ(read_audio(flac16, {.channels = Channels::select, .channel = 1, .offset = 30000, .frames = 10})
                .samples.to_vector(),
            std::vector<float>(ref.begin() + 44100 + 30000, ref.begin() + 44100 + 30010));
}

TEST_F(AudioIo, OggVorbisRoundTripKeepsTheWaveform) {
  const auto x = sine(440, 44100, 44100, 0.5);
  const auto p = path("tone.ogg");
  write_audio(p, planar({x}), 44100, AudioFormat::ogg_vorbis);
  const AudioInfo info = audio_info(p);
  EXPECT_EQ(info.format, "OGG VORBIS");
  EXPECT_EQ(info.frames, 44100);
  const Audio au = read_audio(p);
  EXPECT_EQ(au.sample_rate, 44100);
  const auto y = au.samples.to_vector();
  ASSERT_EQ(y.size(), x.size());
  EXPECT_GT(correlation(x, y, 1000, 43000), 0.99);  // lossy, but the waveform is kept in place
  EXPECT_NEAR(rms(y, 1000, 43000), rms(x, 1000, 43000), 0.02);
}

TEST_F(AudioIo, Gsm610InWavDecodesToTheSignal) {
  const auto x = sine(440, 8000, 8000, 0.5);
  const auto p = path("gsm.wav");
  sndfile_write(p, SF_FORMAT_WAV | SF_FORMAT_GSM610, 8000, 1, x);
  const AudioInfo info = audio_info(p);
  EXPECT_EQ(info.format, "WAV GSM610");
  EXPECT_EQ(info.sample_rate, 8000);
  // WAV GSM 6.10 stores blocks of 320 frames (two 160-sample GSM frames); libsndfile pads the
  // last block and closes with one more, so 8000 frames come back as 8320.
  EXPECT_EQ(info.frames % 320, 0);
  EXPECT_GE(info.frames, 8000);
  EXPECT_LE(info.frames, 8000 + 320);
  const Audio au = read_audio(p);
  EXPECT_EQ(au.sample_rate, 8000);
  const auto y = au.samples.to_vector();
  ASSERT_EQ(static_cast<std::int64_t>(y.size()), info.frames);
  EXPECT_GT(correlation(x, y, 0, 8000), 0.9);
}

TEST_F(AudioIo, ReadsEightBitAndThirtyTwoBitPcm) {
  const auto x = sine(100, 8000, 800, 0.5);
  for (int sub : {SF_FORMAT_PCM_U8, SF_FORMAT_PCM_32}) {
    const auto p = path("pcm" + std::to_string(sub) + ".wav");
    sndfile_write(p, SF_FORMAT_WAV | sub, 8000, 1, x);
    const auto y = read_audio(p).samples.to_vector();
    ASSERT_EQ(y.size(), x.size());
    const double step = sub == SF_FORMAT_PCM_U8 ? 1.0 / 128 : 1.0 / 2147483648.0;
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], step + 1e-7) << sub << " " << i;
  }
  EXPECT_EQ(audio_info(path("pcm" + std::to_string(SF_FORMAT_PCM_U8) + ".wav")).format, "WAV PCM_U8");
}

// ---- errors ----------------------------------------------------------------------

TEST_F(AudioIo, MissingEmptyDirectoryAndGarbageFilesThrowNamingThePath) {
  const auto missing = path("missing.wav");
  expect_error([&] { read_audio(missing); }, {"read_audio", missing.string(), "No such file"});
  expect_error([&] { audio_info(missing); }, {"audio_info", missing.string(), "No such file"});

  const auto empty = path("empty.wav");
  write_bytes(empty, {});
  expect_error([&] { read_audio(empty); }, {empty.string(), "empty file"});

  expect_error([&] { read_audio(dir_); }, {dir_.string(), "not a regular file"});

  const auto garbage = path("garbage.wav");
  std::vector<char> junk(4096);
  std::mt19937 rng(7);
  for (auto& c : junk) c = static_cast<char>(rng());
  write_bytes(garbage, junk);
  expect_error([&] { read_audio(garbage); }, {garbage.string(), "libsndfile cannot read it", "not recognised"});

  // A RIFF/WAVE header that breaks off inside the chunk list.
  write_wav(path("ok.wav"), planar({sine(100, 8000, 100)}), 8000);
  auto bytes = read_bytes(path("ok.wav"));
  bytes.resize(30);
  const auto cut_header = path("cut_header.wav");
  write_bytes(cut_header, bytes);
  expect_error([&] { read_audio(cut_header); }, {cut_header.string(), "libsndfile cannot read it"});
}

TEST_F(AudioIo, UnsupportedEncodingAndZeroSampleRateInHeaderThrow) {
  write_wav(path("ok.wav"), planar({sine(100, 8000, 100)}), 8000);
  const auto ok = read_bytes(path("ok.wav"));

  auto codec = ok;  // format tag 0x1234: no codec libsndfile knows
  codec[20] = 0x34;
  codec[21] = 0x12;
  const auto p = path("codec.wav");
  write_bytes(p, codec);
  expect_error([&] { read_audio(p); }, {p.string(), "libsndfile cannot read it", "fmt"});

  auto rate = ok;  // sample rate field (bytes 24..27) = 0
  for (int i = 24; i < 28; ++i) rate[static_cast<std::size_t>(i)] = 0;
  const auto q = path("rate0.wav");
  write_bytes(q, rate);
  expect_error([&] { read_audio(q); }, {"read_audio", q.string()});
  expect_error([&] { audio_info(q); }, {"audio_info", q.string()});
}

TEST_F(AudioIo, TruncatedWavThrowsOrReadsExactlyThePresentFrames) {
  const auto x = sine(440, 16000, 1000);
  const auto y = sine(220, 16000, 1000);
  const auto full = path("full.wav");
  write_wav(full, planar({x, y}), 16000, WavEncoding::pcm16);
  const auto ref = read_audio(full, {.channels = Channels::all}).samples;
  auto bytes = read_bytes(full);
  ASSERT_EQ(bytes.size(), 44u + 4000u);
  bytes.resize(44 + 2001);  // 500 whole stereo frames and one stray byte
  const auto cut = path("cut.wav");
  write_bytes(cut, bytes);

  expect_error([&] { read_audio(cut); }, {"read_audio", cut.string(), "truncated", "4000", "2001"});
  expect_error([&] { audio_info(cut); }, {"audio_info", cut.string(), "truncated"});

  const auto part = read_audio(cut, {.channels = Channels::all, .allow_truncated = true}).samples;
  ASSERT_EQ(part.shape(), (Shape{2, 500}));
  const auto r0 = row(ref, 0), r1 = row(ref, 1);
  EXPECT_EQ(row(part, 0), std::vector<float>(r0.begin(), r0.begin() + 500));
  EXPECT_EQ(row(part, 1), std::vector<float>(r1.begin(), r1.begin() + 500));
  expect_error([&] { read_audio(cut, {.offset = 501, .allow_truncated = true}); }, {cut.string(), "past the end"});

  // The 0xFFFFFFFF data length of streaming writers is not a truncation.
  auto stream = read_bytes(full);
  for (int i = 40; i < 44; ++i) stream[static_cast<std::size_t>(i)] = static_cast<char>(0xFF);
  const auto streamed = path("streamed.wav");
  write_bytes(streamed, stream);
  EXPECT_EQ(read_audio(streamed, {.channels = Channels::all}).samples.to_vector(), ref.to_vector());
}

TEST_F(AudioIo, TruncatedAiffThrows) {
  const auto x = sine(440, 16000, 1000);
  const auto full = path("full.aiff");
  sndfile_write(full, SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 16000, 1, x);
  const auto ref = read_audio(full).samples.to_vector();
  auto bytes = read_bytes(full);
  bytes.resize(bytes.size() - 1000);
  const auto cut = path("cut.aiff");
  write_bytes(cut, bytes);
  expect_error([&] { read_audio(cut); }, {cut.string(), "truncated"});
  const auto part = read_audio(cut, {.allow_truncated = true}).samples.to_vector();
  ASSERT_EQ(part.size(), 500u);
  EXPECT_EQ(part, std::vector<float>(ref.begin(), ref.begin() + 500));
}

TEST_F(AudioIo, TruncatedFlacAndOggThrow) {
  const auto x = sine(440, 16000, 16000);
  const auto flac = path("full.flac");
  write_audio(flac, planar({x}), 16000, AudioFormat::flac_pcm16);
  const auto ref = read_audio(flac).samples.to_vector();
  auto bytes = read_bytes(flac);
  bytes.resize(bytes.size() / 2);
  const auto cut = path("cut.flac");
  write_bytes(cut, bytes);
  expect_error([&] { read_audio(cut); }, {"read_audio", cut.string(), "truncated or corrupt", "16000 frames"});

  // Leniently: a prefix of the real signal, nothing invented after the cut.
  const auto part = read_audio(cut, {.allow_truncated = true}).samples.to_vector();
  ASSERT_GT(part.size(), 0u);
  ASSERT_LT(part.size(), ref.size());
  EXPECT_EQ(part, std::vector<float>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(part.size())));

  const auto ogg = path("full.ogg");
  write_audio(ogg, planar({x}), 16000, AudioFormat::ogg_vorbis);
  auto ob = read_bytes(ogg);
  ob.resize(ob.size() / 2);
  const auto ocut = path("cut.ogg");
  write_bytes(ocut, ob);
  expect_error([&] { read_audio(ocut); }, {ocut.string(), "libsndfile cannot read it"});
}

TEST_F(AudioIo, NonFiniteSamplesInAFloatFileThrow) {
  std::vector<float> x(100, 0.25f);
  x[42] = std::numeric_limits<float>::quiet_NaN();
  const auto p = path("nan.wav");
  sndfile_write(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, 1, x);
  expect_error([&] { read_audio(p); }, {p.string(), "non-finite", "frame 42"});
}

TEST_F(AudioIo, WriteChecksItsArguments) {
  const auto p = path("bad.wav");
  const auto x = planar({sine(100, 8000, 100)});
  expect_error([&] { write_wav(p, x, 0); }, {"write_wav", p.string(), "sample rate must be > 0, got 0"});
  expect_error([&] { write_wav(p, x, -8000); }, {p.string(), "sample rate"});
  expect_error([&] { write_wav(p, Tensor<float, Cpu>(), 8000); }, {p.string(), "undefined"});
  expect_error([&] { write_wav(p, Tensor<float, Cpu>::empty(Shape{1, 2, 3}), 8000); }, {p.string(), "(1,2,3)"});
  expect_error([&] { write_wav(p, Tensor<float, Cpu>::empty(Shape{0, 3}), 8000); }, {p.string(), "no channels"});
  expect_error([&] { write_audio(p, x, 8000, static_cast<AudioFormat>(99)); }, {"write_audio", "unknown AudioFormat"});
  EXPECT_TRUE(entries(dir_).empty());
}

TEST_F(AudioIo, FailedWritesLeaveNoFileAndKeepTheOldOne) {
  const auto p = path("target.wav");
  const auto old = planar({sine(100, 8000, 100)});
  write_wav(p, old, 8000);
  const auto before = read_bytes(p);

  auto bad = planar({sine(100, 8000, 100)});
  bad.data()[57] = std::numeric_limits<float>::infinity();
  expect_error([&] { write_wav(p, bad, 8000); }, {"write_wav", p.string(), "non-finite", "frame 57"});
  bad.data()[57] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { write_wav(p, bad, 8000, WavEncoding::float32); }, {p.string(), "non-finite"});
  const auto fresh = path("fresh.wav");
  expect_error([&] { write_wav(fresh, bad, 8000); }, {fresh.string(), "nothing was written"});

  // libsndfile refuses 9-channel FLAC: the failure comes after validation, still nothing on disk.
  std::vector<std::vector<float>> nine(9, sine(100, 8000, 100));
  expect_error([&] { write_audio(p, planar(nine), 8000, AudioFormat::flac_pcm16); },
               {"write_audio", p.string(), "cannot encode 9 channel(s)", "FLAC PCM_16"});

  EXPECT_EQ(entries(dir_), std::vector<fs::path>{"target.wav"});  // no temp files, no fresh.wav
  EXPECT_EQ(read_bytes(p), before);

  const auto nodir = path("no/such/dir/x.wav");
  expect_error([&] { write_wav(nodir, old, 8000); }, {nodir.string()});
}

TEST_F(AudioIo, WriteReplacesAnExistingFile) {
  const auto p = path("replace.wav");
  write_wav(p, planar({sine(100, 8000, 100)}), 8000);
  const auto x = sine(200, 16000, 300);
  write_wav(p, planar({x, x}), 16000, WavEncoding::float32);
  const AudioInfo info = audio_info(p);
  EXPECT_EQ(info.frames, 300);
  EXPECT_EQ(info.channels, 2);
  EXPECT_EQ(info.sample_rate, 16000);
  EXPECT_EQ(entries(dir_), std::vector<fs::path>{"replace.wav"});
}

// ---- resampling ------------------------------------------------------------------

TEST(Resample, Downsampling1kHzKeepsFrequencyAndAmplitude) {
  const auto x = sine(1000, 44100, 44100, 0.5);
  const auto y = resample(avgrad::from_vector<float>(x), 44100, 16000);
  ASSERT_EQ(y.shape(), (Shape{16000}));
  const auto v = y.to_vector();
  const auto ref = sine(1000, 16000, 16000, 0.5);
  EXPECT_GT(correlation(v, ref, 500, 15500), 0.9999);  // same frequency and phase: the delay is compensated
  EXPECT_NEAR(rms(v, 500, 15500) / rms(ref, 500, 15500), 1.0, 0.01);
}

TEST(Resample, SameRateIsAnIndependentCopy) {
  const auto x = planar({sine(440, 16000, 1600), sine(880, 16000, 1600)});
  auto y = resample(x, 16000, 16000);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.to_vector(), x.to_vector());
  y.data()[0] = 123.0f;
  EXPECT_NE(x.data()[0], 123.0f);
}

TEST(Resample, HighQualityRemovesAliasesAbove40dB) {
  const auto x = sine(7000, 44100, 44100, 0.5);  // above the 4 kHz Nyquist of 8 kHz
  const auto xt = avgrad::from_vector<float>(x);
  const auto v = resample(xt, 44100, 8000, ResampleQuality::high).to_vector();
  ASSERT_EQ(v.size(), 8000u);
  const double ratio = rms(v, 200, 7800) / rms(x, 0, x.size());
  EXPECT_LT(20 * std::log10(ratio), -40.0);
  // Cubic interpolation lets the 1 kHz alias through: the test can tell the recipes apart.
  const auto q = resample(xt, 44100, 8000, ResampleQuality::quick).to_vector();
  EXPECT_GT(20 * std::log10(rms(q, 200, 7800) / rms(x, 0, x.size())), -40.0);
}

TEST(Resample, OutputLengthIsRoundedRatio) {
  struct Case {
    std::int64_t n;
    double in, out;
  };
  for (const Case& c : {Case{1000, 44100, 16000}, Case{7, 44100, 16000}, Case{12345, 2, 1}, Case{1, 1, 2},
                        Case{7, 14, 6}, Case{999, 22050, 48000}, Case{0, 8000, 16000}, Case{1, 44100, 8000}}) {
    auto x = Tensor<float, Cpu>::empty(Shape{2, c.n});
    std::fill(x.data(), x.data() + 2 * c.n, 0.1f);
    const auto y = resample(x, c.in, c.out);
    const auto expect = static_cast<std::int64_t>(std::round(double(c.n) * c.out / c.in));
    EXPECT_EQ(y.shape(), (Shape{2, expect})) << c.n << " " << c.in << " -> " << c.out;
  }
}

TEST(Resample, ChannelsAreIndependentAndResultsDeterministic) {
  const auto a = sine(300, 48000, 4800), b = sine(2000, 48000, 4800, 0.2);
  const auto x = planar({a, b});
  const auto y = resample(x, 48000, 16000, ResampleQuality::very_high);
  ASSERT_EQ(y.shape(), (Shape{2, 1600}));
  const auto ya = resample(avgrad::from_vector<float>(a), 48000, 16000, ResampleQuality::very_high).to_vector();
  EXPECT_EQ(row(y, 0), ya);
  EXPECT_GT(correlation(row(y, 1), sine(2000, 16000, 1600, 0.2), 100, 1500), 0.9999);
  EXPECT_EQ(resample(x, 48000, 16000, ResampleQuality::very_high).to_vector(), y.to_vector());
}

TEST(Resample, StridedInputAndDoubleOverload) {
  // (frames, 2) storage viewed as (2, frames) through strides: the non-contiguous path.
  const std::int64_t n = 4410;
  const auto a = sine(500, 44100, n), b = sine(1500, 44100, n);
  auto inter = Tensor<float, Cpu>::empty(Shape{n, 2});
  for (std::int64_t i = 0; i < n; ++i) {
    inter.data()[2 * i] = a[static_cast<std::size_t>(i)];
    inter.data()[2 * i + 1] = b[static_cast<std::size_t>(i)];
  }
  const auto view = Tensor<float, Cpu>::from_storage(inter.storage(), Shape{2, n}, Shape{1, 2}, 0);
  ASSERT_FALSE(view.is_contiguous());
  const auto y = resample(view, 44100, 16000);
  EXPECT_EQ(y.to_vector(), resample(planar({a, b}), 44100, 16000).to_vector());

  auto xd = Tensor<double, Cpu>::empty(Shape{n});
  for (std::int64_t i = 0; i < n; ++i) xd.data()[i] = 0.5 * std::sin(2 * kPi * 500 * double(i) / 44100);
  const auto yd = resample(xd, 44100, 16000);
  ASSERT_EQ(yd.shape(), (Shape{1600}));
  const auto yf = row(y, 0);
  for (std::size_t i = 0; i < yf.size(); ++i) ASSERT_NEAR(yd.data()[i], yf[i], 1e-4) << i;
}

TEST(Resample, RejectsBadRatesAndSamples) {
  const auto x = avgrad::from_vector<float>(sine(100, 8000, 100));
  expect_error([&] { resample(x, 0, 16000); }, {"resample", "rates must be finite and > 0", "in_rate 0"});
  expect_error([&] { resample(x, 16000, -1); }, {"resample", "out_rate -1"});
  expect_error([&] { resample(x, std::nan(""), 16000); }, {"resample", "rates must be finite"});
  expect_error([&] { resample(x, 16000, std::numeric_limits<double>::infinity()); }, {"resample", "rates"});
  auto bad = avgrad::from_vector<float>(sine(100, 8000, 100));
  bad.data()[9] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { resample(bad, 8000, 16000); }, {"resample", "non-finite", "frame 9"});
  expect_error([&] { resample(Tensor<float, Cpu>::empty(Shape{1, 2, 3}), 8000, 16000); }, {"resample", "(1,2,3)"});
  expect_error([&] { resample(Tensor<float, Cpu>(), 8000, 16000); }, {"resample", "undefined"});
}

}  // namespace
