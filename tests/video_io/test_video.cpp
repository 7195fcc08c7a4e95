// Tests of the optional video component: FFmpeg decoding (containers, frame-rate conversion, windows, audio track,
// errors) and the ClipFolder cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "avgrad/data/clip_folder.hpp"
#include "avgrad/data/video.hpp"
#include "support/expect_error.hpp"

namespace {

namespace fs = std::filesystem;
using avgrad::Cpu;
using avgrad::Tensor;
using avgrad::testing::expect_error;
using namespace avgrad::data;

/// Output of a shell command, or "" when it fails.
std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  return ::pclose(p) == 0 ? out : std::string();
}

bool have_ffmpeg() {
  static const bool yes = std::system("ffmpeg -hide_banner -loglevel error -version >/dev/null 2>&1") == 0;
  return yes;
}

bool have_encoder(const std::string& name) {
  static const std::string list = run_capture("ffmpeg -hide_banner -encoders 2>/dev/null");
  return list.find(" " + name + " ") != std::string::npos;
}

/// A per-process scratch directory holding the generated media.
const fs::path& scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("avgrad_video_test_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

/// Removes the scratch directory when the test program ends.
class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch(), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

/// Runs ffmpeg to create scratch()/name (once per process); "" if ffmpeg refused.
fs::path make(const std::string& name, const std::string& args) {
  const fs::path out = scratch() / name;
  if (fs::exists(out)) return out;
  const std::string cmd = "ffmpeg -hide_banner -loglevel error -nostdin -y " + args + " '" + out.string() + "' 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(out)) {
    std::error_code ec;
    fs::remove(out, ec);
    return {};
  }
  return out;
}

const std::string kTestsrc =
    "-f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i sine=frequency=440:sample_rate=44100 -t 1 ";

struct Container {
  std::string name, file, vcodec, acodec, args;
};

/// The containers covered: mp4 and avi must be; mkv and webm when their encoders exist.
std::vector<Container> containers() {
  std::vector<Container> c;
  const bool x264 = have_encoder("libx264");
  c.push_back({"mp4", "clip.mp4", x264 ? "h264" : "mpeg4", "aac",
               std::string("-c:v ") + (x264 ? "libx264 -pix_fmt yuv420p" : "mpeg4 -bf 2") + " -c:a aac"});
  c.push_back({"avi", "clip.avi", "mjpeg", "pcm_s16le", "-c:v mjpeg -c:a pcm_s16le"});
  c.push_back({"mkv", "clip.mkv", "mpeg4", "mp3", "-c:v mpeg4 -bf 2 -c:a libmp3lame"});
  if (have_encoder("libvpx") && have_encoder("libvorbis"))
    c.push_back({"webm", "clip.webm", "vp8", "vorbis", "-c:v libvpx -c:a libvorbis"});
  return c;
}

#define REQUIRE_FFMPEG() \
  if (!have_ffmpeg()) GTEST_SKIP() << "ffmpeg CLI not on PATH: cannot generate test videos"

/// Largest absolute difference between two equal-length float ranges.
double max_diff(const float* a, const float* b, std::int64_t n) {
  double m = 0;
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

/// Frequency of a sine from its rising zero crossings over the middle of the signal.
double zero_crossing_frequency(const float* x, std::int64_t n, double rate) {
  const std::int64_t a = n / 8, b = n - n / 8;
  std::int64_t first = -1, last = -1, count = 0;
  for (std::int64_t i = a + 1; i < b; ++i)
    if (x[i - 1] < 0 && x[i] >= 0) {
      if (first < 0) first = i;
      last = i;
      ++count;
    }
  if (count < 2) return 0;
  return double(count - 1) * rate / double(last - first);
}

TEST(Video, EveryContainerDecodesFramesAndAudio) {
  REQUIRE_FFMPEG();
  for (const Container& c : containers()) {
    SCOPED_TRACE(c.name);
    const fs::path f = make(c.file, kTestsrc + c.args);
    ASSERT_FALSE(f.empty()) << "ffmpeg could not write " << c.file;
    const VideoInfo info = video_info(f);
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 48);
    EXPECT_NEAR(info.fps, 10.0, 1e-9);
    EXPECT_NEAR(info.duration, 1.0, 0.1);
    EXPECT_TRUE(info.has_audio);
    EXPECT_EQ(info.video_codec, c.vcodec);
    EXPECT_EQ(info.audio_codec, c.acodec);
    EXPECT_EQ(info.audio_sample_rate, 44100);

    const Video v = read_video(f);
    ASSERT_EQ(v.frames.shape(), avgrad::Shape({10, 3, 48, 64}));  // the decoder was drained: no frame lost
    ASSERT_EQ(v.timestamps.size(), 10u);
    for (std::size_t k = 0; k < 10; ++k) EXPECT_NEAR(v.timestamps[k], 0.1 * double(k), 1e-3);
    EXPECT_NEAR(v.fps, 10.0, 1e-9);
    const auto all = v.frames.to_vector();
    EXPECT_GE(*std::min_element(all.begin(), all.end()), 0.0f);
    EXPECT_LE(*std::max_element(all.begin(), all.end()), 1.0f);
    // testsrc moves every frame: consecutive frames must differ (frames are not repeats).
    const std::int64_t fsz = 3 * 48 * 64;
    for (std::int64_t k = 1; k < 10; ++k)
      EXPECT_GT(max_diff(v.frames.data() + (k - 1) * fsz, v.frames.data() + k * fsz, fsz), 0.1) << "frame " << k;

    const AudioTrack a = read_video_audio(f);
    EXPECT_EQ(a.sample_rate, 16000);
    ASSERT_EQ(a.samples.dim(), 2);
    EXPECT_EQ(a.samples.size(0), 1);
    EXPECT_NEAR(double(a.samples.size(1)), 16000.0, 16000 * 0.06);  // lossy codecs pad/trim a frame
    EXPECT_NEAR(zero_crossing_frequency(a.samples.data(), a.samples.size(1), 16000), 440.0, 2.0);
  }
}

TEST(Video, PcmAudioLengthIsExact) {
  REQUIRE_FFMPEG();
  const fs::path f = make("clip.avi", kTestsrc + "-c:v mjpeg -c:a pcm_s16le");
  ASSERT_FALSE(f.empty());
  // 44100 source samples -> exactly round(44100 * r / 44100) = r samples.
  for (int r : {8000, 16000, 22050, 48000}) {
    const AudioTrack a = read_video_audio(f, r);
    EXPECT_EQ(a.samples.size(1), r) << r;
    EXPECT_NEAR(zero_crossing_frequency(a.samples.data(), a.samples.size(1), r), 440.0, 1.0) << r;
  }
  // lavfi's sine has amplitude 1/8: the resampled peak stays there.
  const AudioTrack a = read_video_audio(f, 16000);
  const auto v = a.samples.to_vector();
  EXPECT_NEAR(*std::max_element(v.begin() + 1000, v.end() - 1000), 0.125, 0.01);
}

TEST(Video, FrameRateConversionPicksTheNearestFrame) {
  REQUIRE_FFMPEG();
  for (const Container& c : containers()) {
    SCOPED_TRACE(c.name);
    const fs::path f = make(c.file, kTestsrc + c.args);
    ASSERT_FALSE(f.empty());
    const Video native = read_video(f);
    const std::int64_t fsz = 3 * 48 * 64;
    for (double fps : {20.0, 4.0, 7.0, 10.0, 30.0}) {
      SCOPED_TRACE(fps);
      VideoOptions o;
      o.fps = fps;
      const Video v = read_video(f, o);
      const auto expected_count = static_cast<std::int64_t>(std::ceil(1.0 * fps - 1e-9));
      ASSERT_EQ(v.frames.size(0), expected_count);
      EXPECT_DOUBLE_EQ(v.fps, fps);
      for (std::int64_t k = 0; k < expected_count; ++k) {
        const double t = double(k) / fps;
        EXPECT_NEAR(v.timestamps[static_cast<std::size_t>(k)], t, 1e-12);
        // Nearest native frame, ties to the earlier one.
        std::size_t best = 0;
        for (std::size_t j = 1; j < native.timestamps.size(); ++j)
          if (std::abs(native.timestamps[j] - t) < std::abs(native.timestamps[best] - t) - 1e-9) best = j;
        EXPECT_EQ(max_diff(v.frames.data() + k * fsz, native.frames.data() + std::int64_t(best) * fsz, fsz), 0.0)
            << "output frame " << k << " should be native frame " << best;
      }
    }
  }
}

TEST(Video, SolidColourGrayAndResize) {
  REQUIRE_FFMPEG();
  std::vector<fs::path> files{make("red.avi", "-f lavfi -i color=c=red:size=32x24:rate=10 -t 1 -c:v mjpeg -q:v 2"),
                              make("red.mkv", "-f lavfi -i color=c=red:size=32x24:rate=10 -t 1 -c:v mpeg4 -q:v 2")};
  if (have_encoder("libx264"))
    files.push_back(make("red.mp4", "-f lavfi -i color=c=red:size=32x24:rate=10 -t 1 -c:v libx264 -pix_fmt yuv444p"));
  for (const fs::path& f : files) {
    ASSERT_FALSE(f.empty());
    SCOPED_TRACE(f.string());
    const Video rgb = read_video(f);
    ASSERT_EQ(rgb.frames.shape(), avgrad::Shape({10, 3, 24, 32}));
    const std::int64_t plane = 24 * 32;
    for (std::int64_t t = 0; t < 10; ++t)
      for (std::int64_t i = 0; i < plane; ++i) {
        const float* p = rgb.frames.data() + t * 3 * plane + i;
        ASSERT_NEAR(p[0], 1.0, 0.05);
        ASSERT_NEAR(p[plane], 0.0, 0.05);
        ASSERT_NEAR(p[2 * plane], 0.0, 0.05);
      }
    VideoOptions o;
    o.format = PixelFormat::gray;
    o.width = 16;
    o.height = 12;
    const Video g = read_video(f, o);
    ASSERT_EQ(g.frames.shape(), avgrad::Shape({10, 1, 12, 16}));
    // BT.601 luma of pure red: 0.299.
    for (float x : g.frames.to_vector()) ASSERT_NEAR(x, 0.299, 0.03);
    // One side given: the other keeps the aspect ratio (32x24 -> 8x6).
    VideoOptions w;
    w.width = 8;
    EXPECT_EQ(read_video(f, w).frames.shape(), avgrad::Shape({10, 3, 6, 8}));
    VideoOptions up;  // enlarging uses bilinear and stays red
    up.width = 80;
    up.height = 60;
    const Video u = read_video(f, up);
    ASSERT_EQ(u.frames.shape(), avgrad::Shape({10, 3, 60, 80}));
    EXPECT_NEAR(u.frames.at({5, 0, 30, 40}), 1.0, 0.05);
    EXPECT_NEAR(u.frames.at({5, 1, 30, 40}), 0.0, 0.05);
  }
}

TEST(Video, StartDurationAndMaxFrames) {
  REQUIRE_FFMPEG();
  for (const Container& c : containers()) {
    SCOPED_TRACE(c.name);
    const fs::path f = make(c.file, kTestsrc + c.args);
    ASSERT_FALSE(f.empty());
    const Video native = read_video(f);
    const std::int64_t fsz = 3 * 48 * 64;
    const auto same_as_native = [&](const Video& v, std::int64_t k, std::int64_t j) {
      return max_diff(v.frames.data() + k * fsz, native.frames.data() + j * fsz, fsz) == 0.0;
    };
    VideoOptions w;
    w.start = 0.3;
    w.duration = 0.4;
    const Video a = read_video(f, w);  // native frames at 0.3, 0.4, 0.5, 0.6
    ASSERT_EQ(a.frames.size(0), 4);
    for (std::int64_t k = 0; k < 4; ++k) {
      EXPECT_NEAR(a.timestamps[std::size_t(k)], 0.3 + 0.1 * double(k), 1e-3);
      EXPECT_TRUE(same_as_native(a, k, 3 + k)) << k;
    }
    VideoOptions r;
    r.start = 0.33;
    r.duration = 0.5;
    r.fps = 5;
    const Video b = read_video(f, r);  // t = 0.33, 0.53, 0.73 -> native 3, 5, 7
    ASSERT_EQ(b.frames.size(0), 3);
    EXPECT_TRUE(same_as_native(b, 0, 3));
    EXPECT_TRUE(same_as_native(b, 1, 5));
    EXPECT_TRUE(same_as_native(b, 2, 7));
    VideoOptions m;
    m.max_frames = 2;
    m.start = 0.5;
    const Video d = read_video(f, m);
    ASSERT_EQ(d.frames.size(0), 2);
    EXPECT_TRUE(same_as_native(d, 0, 5));
    EXPECT_TRUE(same_as_native(d, 1, 6));
    VideoOptions z;
    z.max_frames = 0;
    EXPECT_EQ(read_video(f, z).frames.shape(), avgrad::Shape({0, 3, 48, 64}));

    const AudioTrack full = read_video_audio(f, 16000);
    AudioTrackOptions ao;
    ao.start = 0.25;
    ao.duration = 0.5;
    const AudioTrack part = read_video_audio(f, ao);
    ASSERT_EQ(part.samples.size(1), 8000);
    EXPECT_EQ(max_diff(part.samples.data(), full.samples.data() + 4000, 8000), 0.0);
    VideoOptions late;
    late.start = 5;
    expect_error([&] { read_video(f, late); }, {"read_video", f.string(), "past the end"});
    AudioTrackOptions alate;
    alate.start = 5;
    expect_error([&] { read_video_audio(f, alate); }, {"read_video_audio", f.string(), "past the end"});
  }
}

TEST(Video, BadOptionsAreRejected) {
  REQUIRE_FFMPEG();
  const fs::path f = make("clip.avi", kTestsrc + "-c:v mjpeg -c:a pcm_s16le");
  ASSERT_FALSE(f.empty());
  VideoOptions o;
  o.fps = -1;
  expect_error([&] { read_video(f, o); }, {"read_video", "fps"});
  o = {};
  o.duration = 0;
  expect_error([&] { read_video(f, o); }, {"read_video", "duration"});
  o = {};
  o.start = std::nan("");
  expect_error([&] { read_video(f, o); }, {"read_video", "start"});
  o = {};
  o.width = -3;
  expect_error([&] { read_video(f, o); }, {"read_video", "width"});
  expect_error([&] { read_video_audio(f, 0); }, {"read_video_audio", "sample_rate"});
}

TEST(Video, BrokenInputsThrowNamingTheFile) {
  const fs::path dir = scratch();
  const fs::path missing = dir / "does_not_exist.mp4";
  expect_error([&] { read_video(missing); }, {"read_video", missing.string(), "cannot open", "No such file"});
  expect_error([&] { video_info(missing); }, {"video_info", missing.string(), "No such file"});
  expect_error([&] { read_video_audio(missing); }, {"read_video_audio", missing.string(), "No such file"});

  const fs::path empty = dir / "empty.mp4";
  std::ofstream(empty).close();
  expect_error([&] { read_video(empty); }, {empty.string(), "empty file"});
  expect_error([&] { read_video(dir); }, {dir.string(), "not a regular file"});

  std::mt19937 rng(7);
  for (int k = 0; k < 8; ++k) {
    const fs::path junk = dir / ("junk" + std::to_string(k) + (k % 2 ? ".mp4" : ".avi"));
    std::ofstream out(junk, std::ios::binary);
    for (int i = 0; i < 4096 << k % 4; ++i) out.put(static_cast<char>(rng()));
    out.close();
    expect_error([&] { read_video(junk); }, {"read_video", junk.string()});
    expect_error([&] { read_video_audio(junk); }, {"read_video_audio", junk.string()});
  }
}

/// The first `keep` bytes of `src` as a new file.
fs::path cut(const fs::path& src, const std::string& name, std::uintmax_t keep) {
  std::ifstream in(src, std::ios::binary);
  std::vector<char> b(keep);
  in.read(b.data(), static_cast<std::streamsize>(keep));
  const fs::path out = scratch() / name;
  std::ofstream(out, std::ios::binary).write(b.data(), in.gcount());
  return out;
}

TEST(Video, TruncatedFilesThrowOrDecodeWhatIsThere) {
  REQUIRE_FFMPEG();
  // moov at the end (ffmpeg's default): a file cut in the middle has no index at all.
  const fs::path mp4 = make("long.mp4",
                            "-f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i sine=sample_rate=44100 "
                            "-t 4 -c:v mpeg4 -c:a aac");
  ASSERT_FALSE(mp4.empty());
  const fs::path half = cut(mp4, "long_half.mp4", fs::file_size(mp4) / 2);
  expect_error([&] { read_video(half); }, {"read_video", half.string()});
  expect_error([&] { video_info(half); }, {"video_info", half.string()});

  // moov first (faststart): the header promises 4 s, the data stops at about half.
  const fs::path fast = make("fast.mp4",
                             "-f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i sine=sample_rate=44100 "
                             "-t 4 -c:v mpeg4 -c:a aac -movflags +faststart");
  ASSERT_FALSE(fast.empty());
  const fs::path fhalf = cut(fast, "fast_half.mp4", fs::file_size(fast) / 2);
  expect_error([&] { read_video(fhalf); }, {"read_video", fhalf.string(), "truncated"});
  expect_error([&] { read_video_audio(fhalf); }, {"read_video_audio", fhalf.string(), "truncated"});
  VideoOptions lenient;
  lenient.allow_truncated = true;
  const Video part = read_video(fhalf, lenient);
  EXPECT_GT(part.frames.size(0), 5);
  EXPECT_LT(part.frames.size(0), 40);
  AudioTrackOptions alenient;
  alenient.allow_truncated = true;
  EXPECT_LT(read_video_audio(fhalf, alenient).samples.size(1), 4 * 16000);
  // A window inside the part that is present is not an error.
  VideoOptions early;
  early.duration = 0.5;
  EXPECT_EQ(read_video(fhalf, early).frames.size(0), 5);

  // Cuts at many offsets of every container: an error or a result, never a crash or a hang.
  for (const Container& c : containers()) {
    const fs::path f = make(c.file, kTestsrc + c.args);
    ASSERT_FALSE(f.empty());
    const auto size = fs::file_size(f);
    for (int k = 1; k < 20; ++k) {
      const fs::path p = cut(f, "cut_" + std::to_string(k) + "_" + c.file, size * std::uintmax_t(k) / 20);
      for (bool lenient_read : {false, true}) {
        try {
          VideoOptions o;
          o.allow_truncated = lenient_read;
          const Video v = read_video(p, o);
          EXPECT_LE(v.frames.size(0), 10);
        } catch (const avgrad::Error& e) {
          EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
        }
        try {
          AudioTrackOptions o;
          o.allow_truncated = lenient_read;
          (void)read_video_audio(p, o);
        } catch (const avgrad::Error& e) {
          EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
        }
      }
    }
  }
}

TEST(Video, MissingStreamsAndEmptyAudio) {
  REQUIRE_FFMPEG();
  const fs::path wav = make("tone.wav", "-f lavfi -i sine=frequency=440:sample_rate=8000 -t 1");
  ASSERT_FALSE(wav.empty());
  expect_error([&] { read_video(wav); }, {"read_video", wav.string(), "no video stream"});
  expect_error([&] { video_info(wav); }, {"video_info", wav.string(), "no video stream"});
  EXPECT_EQ(read_video_audio(wav, 8000).samples.size(1), 8000);  // audio-only files still give their audio

  const fs::path mute = make("mute.avi", "-f lavfi -i testsrc=size=64x48:rate=10 -t 1 -c:v mjpeg -an");
  ASSERT_FALSE(mute.empty());
  EXPECT_FALSE(video_info(mute).has_audio);
  expect_error([&] { read_video_audio(mute); }, {"read_video_audio", mute.string(), "no audio stream"});

  // An audio stream without a single packet: zero samples, not an error.
  const fs::path silent = make("zero_audio.mkv",
                               "-f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i anullsrc=r=44100 "
                               "-t 1 -af atrim=end_sample=0 -c:v mpeg4 -c:a pcm_s16le");
  ASSERT_FALSE(silent.empty());
  EXPECT_TRUE(video_info(silent).has_audio);
  EXPECT_EQ(read_video_audio(silent).samples.shape(), avgrad::Shape({1, 0}));
  EXPECT_EQ(read_video(silent).frames.size(0), 10);
}

TEST(Video, RealFilesFromOpencvDoc) {
  // Real-world clips from Debian's opencv-doc when it is installed (CI does not install it:
  // ~95 MB): mpeg4 + AC-3 audio, cinepak, msmpeg4v3, and a deliberately damaged file.
  const fs::path dir = "/usr/share/doc/opencv-doc/examples/data";
  std::error_code ec;
  if (!fs::exists(dir / "Megamind.avi", ec)) GTEST_SKIP() << "opencv-doc is not installed";
  for (const char* name : {"Megamind.avi", "tree.avi", "vtest.avi"}) {
    SCOPED_TRACE(name);
    const VideoInfo info = video_info(dir / name);
    EXPECT_GT(info.width, 0);
    EXPECT_GT(info.fps, 0);
    VideoOptions o;
    o.max_frames = 5;
    o.width = 32;
    o.height = 32;
    const Video v = read_video(dir / name, o);
    EXPECT_EQ(v.frames.shape(), avgrad::Shape({5, 3, 32, 32}));
    double mean = 0;
    for (float x : v.frames.to_vector()) mean += x;
    mean /= static_cast<double>(v.frames.numel());
    EXPECT_GT(mean, 0.02);  // real pictures, not black frames
    EXPECT_LT(mean, 0.98);
  }
  // The one with a soundtrack: its first AC-3 frame is damaged (the ffmpeg CLI reports it too),
  // so a strict read names the file and the problem, and a lenient one skips that frame and
  // returns ~duration seconds of non-silent 16 kHz mono.
  const VideoInfo mm = video_info(dir / "Megamind.avi");
  ASSERT_TRUE(mm.has_audio);
  expect_error([&] { read_video_audio(dir / "Megamind.avi", 16000); }, {"Megamind.avi", "corrupt audio data"});
  AudioTrackOptions lenient;
  lenient.sample_rate = 16000;
  lenient.allow_truncated = true;
  const AudioTrack a = read_video_audio(dir / "Megamind.avi", lenient);
  EXPECT_EQ(a.samples.size(0), 1);
  EXPECT_NEAR(static_cast<double>(a.samples.size(1)) / 16000.0, mm.duration, 0.5);
  double energy = 0;
  for (float x : a.samples.to_vector()) energy += static_cast<double>(x) * x;
  EXPECT_GT(energy, 0);
  // The damaged copy must either decode or fail with an error naming it — never crash or hang.
  try {
    const Video v = read_video(dir / "Megamind_bugy.avi", VideoOptions{});
    EXPECT_GT(v.frames.size(0), 0);
  } catch (const avgrad::Error& e) {
    EXPECT_NE(std::string(e.what()).find("Megamind_bugy.avi"), std::string::npos) << e.what();
  }
}

// ---- ClipFolder -------------------------------------------------------------------------

TEST(ClipFolderCache, BuildsSkipsBadRowsReopensAndCollates) {
  REQUIRE_FFMPEG();
  const fs::path clips = scratch() / "clips";
  fs::create_directories(clips);
  // Four 1.5 s clips: two colours x two tones, one of them without audio.
  const auto gen = [&](const std::string& name, const std::string& colour, int freq, bool audio) {
    const std::string a = audio ? "-f lavfi -i sine=frequency=" + std::to_string(freq) + ":sample_rate=22050 " : "";
    const fs::path p = make("clips/" + name, "-f lavfi -i color=c=" + colour + ":size=40x30:rate=12 " + a +
                                                 "-t 1.5 -c:v mjpeg " + (audio ? "-c:a pcm_s16le" : "-an"));
    ASSERT_FALSE(p.empty()) << name;
  };
  gen("red clip.avi", "red", 440, true);
  gen("blue.avi", "blue", 880, true);
  gen("green.avi", "green", 440, true);
  gen("white.avi", "white", 0, false);
  const fs::path csv = scratch() / "clips.csv";
  std::ofstream(csv) << "file,label,start,end\n"
                        "\"red clip.avi\",0\n"
                        "blue.avi,1,0.5\n"
                        "missing.avi,1\n"  // line 4: missing file
                        "green.avi,7\n"    // line 5: label out of range
                        "\r\n"
                        "white.avi,2,0,0.5\n";  // line 7: short window -> padded

  ClipFolderOptions opt;
  opt.fps = 4;
  opt.width = 20;
  opt.height = 16;
  opt.seconds = 1.0;
  opt.sample_rate = 8000;
  opt.num_classes = 3;
  opt.shard_clips = 2;
  opt.progress = false;
  const fs::path cache = scratch() / "cache";
  expect_error([&] { ClipFolder::build_cache(csv, clips, cache, opt); },
               {"ClipFolder::build_cache", csv.string() + ":4", "missing.avi"});
  const ClipCacheReport rep = ClipFolder::build_cache(csv, clips, cache, opt, /*skip_bad=*/true);
  EXPECT_EQ(rep.clips, 3);
  EXPECT_EQ(rep.shards, 2);
  ASSERT_EQ(rep.skipped.size(), 2u);
  EXPECT_EQ(rep.skipped[0].line, 4);
  EXPECT_EQ(rep.skipped[0].file, "missing.avi");
  EXPECT_NE(rep.skipped[0].reason.find("No such file"), std::string::npos) << rep.skipped[0].reason;
  EXPECT_EQ(rep.skipped[1].line, 5);
  EXPECT_NE(rep.skipped[1].reason.find("out of range"), std::string::npos) << rep.skipped[1].reason;
  const std::string manifest = avgrad::data::detail::read_text_file(cache / "manifest.json", "test");
  EXPECT_NE(manifest.find("\"skipped\":[{\"line\":4"), std::string::npos) << manifest;

  const ClipFolder ds = ClipFolder::open(cache);
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.file(0), "red clip.avi");
  EXPECT_EQ(ds.label(0), 0);
  EXPECT_EQ(ds.label(1), 1);
  EXPECT_EQ(ds.label(2), 2);
  const ClipSample red = ds.get(0);
  ASSERT_EQ(red.video.shape(), avgrad::Shape({4, 3, 16, 20}));
  ASSERT_EQ(red.audio.shape(), avgrad::Shape({8000}));
  EXPECT_NEAR(red.video.at({2, 0, 8, 10}), 1.0, 0.05);
  EXPECT_NEAR(red.video.at({2, 2, 8, 10}), 0.0, 0.05);
  EXPECT_NEAR(zero_crossing_frequency(red.audio.data(), 8000, 8000), 440.0, 2.0);
  const ClipSample blue = ds.get(1);  // starts at 0.5 s of a 1.5 s clip: full second available
  EXPECT_NEAR(blue.video.at({3, 2, 8, 10}), 1.0, 0.05);
  EXPECT_NEAR(zero_crossing_frequency(blue.audio.data(), 8000, 8000), 880.0, 3.0);
  EXPECT_GT(std::abs(blue.audio.at({7999})) + std::abs(blue.audio.at({7998})), 0.0f);
  const ClipSample white = ds.get(2);  // 0.5 s window: frames repeat, audio is silence (no stream)
  for (std::int64_t t = 0; t < 4; ++t) EXPECT_NEAR(white.video.at({t, 1, 5, 5}), 1.0, 0.05);
  for (float x : white.audio.to_vector()) ASSERT_EQ(x, 0.0f);
  expect_error([&] { ds.get(3); }, {"ClipFolder::get", "out of range"});

  std::vector<ClipSample> batch{ds.get(2), ds.get(0)};
  const ClipBatch b = ClipFolder::collate(std::move(batch));
  EXPECT_EQ(b.video.shape(), avgrad::Shape({2, 4, 3, 16, 20}));
  EXPECT_EQ(b.audio.shape(), avgrad::Shape({2, 8000}));
  EXPECT_EQ(b.labels.to_vector(), (std::vector<std::int64_t>{2, 0}));
  EXPECT_EQ(b.video.at({1, 2, 0, 8, 10}), red.video.at({2, 0, 8, 10}));
  EXPECT_EQ(b.audio.at({1, 100}), red.audio.at({100}));
  std::vector<ClipSample> mixed{ds.get(0), ClipSample{}};
  mixed[1].video = avgrad::zeros<float>(avgrad::Shape{1, 3, 16, 20});
  mixed[1].audio = avgrad::zeros<float>(avgrad::Shape{8000});
  expect_error([&] { ClipFolder::collate(std::move(mixed)); }, {"ClipFolder::collate", "sample 1"});

  // Class names instead of integers, and a damaged cache.
  const fs::path named = scratch() / "named.csv";
  std::ofstream(named) << "blue.avi,\"sea, sky\"\nred clip.avi,fire\ngreen.avi,grass\n";
  ClipFolderOptions nopt = opt;
  nopt.num_classes = 0;
  nopt.classes = {"fire", "sea, sky"};
  expect_error([&] { ClipFolder::build_cache(named, clips, scratch() / "named_cache", nopt); },
               {named.string() + ":3", "grass", "not one of the 2 classes"});
  // The failed build wrote no manifest: the directory is not a usable cache.
  expect_error([&] { ClipFolder::open(scratch() / "named_cache"); }, {"ClipFolder::open", "manifest.json"});
  const ClipCacheReport nrep = ClipFolder::build_cache(named, clips, scratch() / "named_cache", nopt, true);
  EXPECT_EQ(nrep.clips, 2);
  const ClipFolder nd = ClipFolder::open(scratch() / "named_cache");
  EXPECT_EQ(nd.classes(), nopt.classes);
  EXPECT_EQ(nd.label(0), 1);
  EXPECT_EQ(nd.label(1), 0);
}

TEST(ClipFolderCache, DamagedCachesAreRejected) {
  REQUIRE_FFMPEG();
  const fs::path clips = scratch() / "clips2";
  fs::create_directories(clips);
  ASSERT_FALSE(make("clips2/a.avi", kTestsrc + "-c:v mjpeg -c:a pcm_s16le").empty());
  const fs::path csv = scratch() / "clips2.csv";
  std::ofstream(csv) << "a.avi,0\na.avi,1\n";
  ClipFolderOptions opt;
  opt.fps = 2;
  opt.width = 8;
  opt.height = 6;
  opt.seconds = 1;
  opt.progress = false;
  const fs::path cache = scratch() / "cache2";
  EXPECT_EQ(ClipFolder::build_cache(csv, clips, cache, opt).clips, 2);
  EXPECT_EQ(ClipFolder::open(cache).size(), 2);
  const fs::path shard = cache / "shard-00000.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 10);
  expect_error([&] { ClipFolder::open(cache); }, {"ClipFolder::open", shard.string()});
  fs::remove(shard);
  expect_error([&] { ClipFolder::open(cache); }, {"ClipFolder::open", shard.string(), "cannot open"});
  expect_error([&] { ClipFolder::open(scratch() / "no_cache_here"); }, {"ClipFolder::open", "manifest.json"});
}

}  // namespace
