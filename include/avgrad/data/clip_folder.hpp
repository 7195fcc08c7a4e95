// A folder of video clips with a label CSV (Kinetics-Sounds style), decoded once into a
// safetensors cache and then served as fixed-size (video, audio, label) samples.
//
// Optional component: include only when linking avgrad::video_io (defines AVGRAD_WITH_VIDEO_IO).
//
// CSV: one clip per record, fields file,label[,start[,end]] (RFC 4180: quoted fields with ""
// escapes and embedded commas/newlines; blank lines ignored; a first record whose first field
// is "file", "path" or "filename" is a header). `file` is relative to the clip folder; `label`
// is an integer >= 0 (< num_classes when that is set) or, when ClipFolderOptions::classes is
// given, one of those names (its index is the label); start/end are seconds in the clip.
//
// Cache (a directory): shard-NNNNN.safetensors files holding "video" U8 (n, T, C, H, W),
// "audio" F32 (n, S) and "label" I64 (n), plus manifest.json (sizes, options, classes, the
// clip list, the skipped rows with their reasons). Decoding happens once, in build_cache;
// the manifest is written last and atomically, so a cache without one is incomplete.
// open() validates the manifest and every shard header, then get(i) reads one clip's bytes
// with pread: nothing else is held in memory, and get is safe to call from several threads.
//
// Fixed durations: every clip covers `seconds` from its start (or less when end - start is
// shorter). Video is T = round(seconds · fps) frames, padded by repeating the last frame;
// audio is S = round(seconds · sample_rate) samples, padded with zeros.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"
#include "avgrad/data/detail/json.hpp"
#include "avgrad/data/safetensors.hpp"
#include "avgrad/data/video.hpp"
#include "avgrad/train/progress.hpp"

namespace avgrad::data {

/// One clip: video (T, C, H, W) float in [0, 1], audio (S) float mono, the class index.
struct ClipSample {
  Tensor<float, Cpu> video;
  Tensor<float, Cpu> audio;
  std::int64_t label = 0;
};

/// A batch of clips: video (B, T, C, H, W), audio (B, S), labels (B).
struct ClipBatch {
  Tensor<float, Cpu> video;
  Tensor<float, Cpu> audio;
  Tensor<std::int64_t, Cpu> labels;
};

struct ClipFolderOptions {
  double fps = 8;                         ///< video frames per second, > 0
  int width = 112, height = 112;          ///< frame size, > 0
  PixelFormat format = PixelFormat::rgb;  ///< C = 3 (rgb) or 1 (gray)
  double seconds = 2.0;                   ///< clip length, > 0
  int sample_rate = 16000;                ///< audio rate, > 0
  std::int64_t num_classes = 0;           ///< > 0: integer labels must be < num_classes
  std::vector<std::string> classes;       ///< non-empty: labels are these names
  bool require_audio = false;             ///< a clip without an audio stream is bad (else silent)
  std::int64_t shard_clips = 64;          ///< clips per shard file
  bool progress = true;                   ///< ProgressBar on stderr while building
};

/// A CSV row that build_cache left out (skip_bad) and why.
struct SkippedClip {
  std::int64_t line = 0;  ///< 1-based line of the CSV where the record starts
  std::string file;
  std::string reason;
};

struct ClipCacheReport {
  std::int64_t clips = 0;   ///< clips in the cache
  std::int64_t shards = 0;  ///< shard files written
  std::vector<SkippedClip> skipped;
};

namespace detail {

/// One CSV record: its fields, the line it starts on, and a syntax error (empty if none).
struct CsvRecord {
  std::vector<std::string> fields;
  std::int64_t line = 0;
  std::string error;
};

/// RFC 4180 records. Unquoted fields are trimmed of spaces and tabs; quoted fields are kept
/// verbatim. A quote opened and never closed makes the rest of the file one bad record.
inline std::vector<CsvRecord> parse_csv(std::string_view text) {
  std::vector<CsvRecord> out;
  std::size_t i = 0;
  std::int64_t line = 1;
  if (text.starts_with("\xEF\xBB\xBF")) i = 3;  // UTF-8 byte order mark from spreadsheet exports
  const auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
  };
  while (i < text.size()) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool quoted = false, end_of_record = false;
    while (!end_of_record) {
      if (i >= text.size()) {
        rec.fields.push_back(quoted ? field : trim(field));
        break;
      }
      const char c = text[i];
      if (c == '"' && trim(field).empty() && !quoted) {
        // Opening quote: read to the closing one.
        field.clear();
        quoted = true;
        ++i;
        bool closed = false;
        while (i < text.size()) {
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            closed = true;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
        if (!closed) {
          rec.error = "unterminated quoted field";
          end_of_record = true;
          rec.fields.push_back(field);
        }
        continue;
      }
      if (c == ',') {
        rec.fields.push_back(quoted ? field : trim(field));
        field.clear();
        quoted = false;
        ++i;
      } else if (c == '\n' || c == '\r') {
        rec.fields.push_back(quoted ? field : trim(field));
        i += (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ? 2 : 1;
        ++line;
        end_of_record = true;
      } else {
        if (quoted && rec.error.empty()) rec.error = "text after a closing quote";
        field += c;
        ++i;
      }
    }
    const bool blank = rec.fields.size() == 1 && rec.fields[0].empty() && rec.error.empty();
    if (!blank) out.push_back(std::move(rec));
  }
  return out;
}

inline bool parse_int64(const std::string& s, std::int64_t& v) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}
inline bool parse_seconds(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(v);
}

inline std::string read_text_file(const std::filesystem::path& path, std::string_view op) {
  const std::vector<std::uint8_t> b = avgrad::read_file_bytes(path, op);
  return std::string(b.begin(), b.end());
}

/// Reads exactly n bytes at `offset` of fd, resuming after short reads and EINTR.
inline void pread_all(int fd, void* dst, std::size_t n, std::uint64_t offset, std::string_view op,
                      const std::string& what) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(op, avgrad::detail::concat(what, ": read failed: ", avgrad::detail::errno_text(errno)));
    if (r == 0)
      throw Error(op, avgrad::detail::concat(what, ": unexpected end of file (the cache changed after open?)"));
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
}

/// An open read-only descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      avgrad::detail::close_fd(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { avgrad::detail::close_fd(fd_); }
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

inline std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace detail

/// The dataset over a clip cache; see the header comment. Copies share the open files.
class ClipFolder {
 public:
  using sample_type = ClipSample;
  using batch_type = ClipBatch;

  static constexpr std::string_view kManifest = "manifest.json";

  /// Decodes every clip the CSV lists (relative to `folder`) once and writes the cache
  /// directory `cache_dir` (created if needed; an older cache there is replaced). A bad row
  /// (syntax, missing or unreadable clip, label out of range or unknown, end <= start, no video
  /// in the window, no audio with require_audio) throws avgrad::Error naming the CSV line,
  /// or with skip_bad is left out and listed with its reason in the report and the manifest.
  static ClipCacheReport build_cache(const std::filesystem::path& csv, const std::filesystem::path& folder,
                                     const std::filesystem::path& cache_dir, const ClipFolderOptions& opt = {},
                                     bool skip_bad = false) {
    constexpr std::string_view op = "ClipFolder::build_cache";
    AVGRAD_CHECK(std::isfinite(opt.fps) && opt.fps > 0, op, "fps must be > 0, got ", opt.fps);
    AVGRAD_CHECK(opt.width > 0 && opt.height > 0, op, "width and height must be > 0, got ", opt.width, "x", opt.height);
    AVGRAD_CHECK(std::isfinite(opt.seconds) && opt.seconds > 0, op, "seconds must be > 0, got ", opt.seconds);
    AVGRAD_CHECK(opt.sample_rate > 0, op, "sample_rate must be > 0, got ", opt.sample_rate);
    AVGRAD_CHECK(opt.shard_clips > 0, op, "shard_clips must be > 0, got ", opt.shard_clips);
    AVGRAD_CHECK(opt.num_classes >= 0, op, "num_classes must be >= 0, got ", opt.num_classes);
    const std::int64_t frames = std::max<std::int64_t>(1, std::llround(opt.seconds * opt.fps));
    const std::int64_t samples = std::llround(opt.seconds * opt.sample_rate);
    const std::int64_t channels = opt.format == PixelFormat::gray ? 1 : 3;
    const std::int64_t h = opt.height, w = opt.width;
    const std::int64_t clip_bytes = frames * channels * h * w;

    const std::string csv_name = csv.string();
    const std::vector<detail::CsvRecord> records = detail::parse_csv(detail::read_text_file(csv, op));
    std::map<std::string, std::int64_t, std::less<>> class_index;
    for (std::size_t c = 0; c < opt.classes.size(); ++c)
      AVGRAD_CHECK(class_index.emplace(opt.classes[c], static_cast<std::int64_t>(c)).second, op, "class name \"",
                   opt.classes[c], "\" is listed twice");
    std::filesystem::create_directories(cache_dir);

    ClipCacheReport report;
    struct Kept {
      std::string file;
      std::int64_t label, line;
    };
    std::vector<Kept> kept;
    std::vector<std::uint8_t> video_buf;  // the current shard, (n, T, C, H, W)
    std::vector<float> audio_buf;         // (n, S)
    std::vector<std::int64_t> label_buf;
    std::vector<std::string> shard_files;

    auto flush_shard = [&] {
      if (label_buf.empty()) return;
      const auto n = static_cast<std::int64_t>(label_buf.size());
      auto v = Tensor<std::uint8_t, Cpu>::empty(Shape{n, frames, channels, h, w});
      std::copy(video_buf.begin(), video_buf.end(), v.data());
      auto a = Tensor<float, Cpu>::empty(Shape{n, samples});
      std::copy(audio_buf.begin(), audio_buf.end(), a.data());
      auto l = Tensor<std::int64_t, Cpu>::empty(Shape{n});
      std::copy(label_buf.begin(), label_buf.end(), l.data());
      char name[48];
      std::snprintf(name, sizeof name, "shard-%05lld.safetensors", static_cast<long long>(shard_files.size()));
      SafetensorsWriter wr;
      wr.add("video", v).add("audio", a).add("label", l);
      wr.write(cache_dir / name, {{"avgrad.clip_folder", "1"}});
      shard_files.emplace_back(name);
      video_buf.clear();
      audio_buf.clear();
      label_buf.clear();
    };

    std::unique_ptr<ProgressBar> bar;
    if (opt.progress) bar = std::make_unique<ProgressBar>("caching clips", static_cast<std::int64_t>(records.size()));
    std::int64_t done = 0;
    bool first_record = true;
    for (const detail::CsvRecord& rec : records) {
      const bool header = first_record && rec.error.empty() && !rec.fields.empty() &&
                          (rec.fields[0] == "file" || rec.fields[0] == "path" || rec.fields[0] == "filename");
      first_record = false;
      if (bar) bar->update(++done, {{"skipped", static_cast<double>(report.skipped.size())}});
      if (header) continue;
      const std::string file = rec.fields.empty() ? std::string() : rec.fields[0];
      try {
        AVGRAD_CHECK(rec.error.empty(), op, rec.error);
        AVGRAD_CHECK(rec.fields.size() >= 2 && rec.fields.size() <= 4, op,
                     "expected file,label[,start[,end]] but the row has ", rec.fields.size(), " field(s)");
        AVGRAD_CHECK(!file.empty(), op, "empty file name");
        std::int64_t label = -1;
        const std::string& lab = rec.fields[1];
        if (!opt.classes.empty()) {
          auto it = class_index.find(lab);
          AVGRAD_CHECK(it != class_index.end(), op, "label \"", lab, "\" is not one of the ", opt.classes.size(),
                       " classes");
          label = it->second;
        } else {
          AVGRAD_CHECK(detail::parse_int64(lab, label), op, "label \"", lab, "\" is not an integer");
          AVGRAD_CHECK(label >= 0, op, "label ", label, " is negative");
          AVGRAD_CHECK(opt.num_classes == 0 || label < opt.num_classes, op, "label ", label, " is out of range [0, ",
                       opt.num_classes, ")");
        }
        double start = 0, end = start + opt.seconds;
        if (rec.fields.size() >= 3 && !rec.fields[2].empty())
          AVGRAD_CHECK(detail::parse_seconds(rec.fields[2], start) && start >= 0, op, "start \"", rec.fields[2],
                       "\" is not a time >= 0 in seconds");
        end = start + opt.seconds;
        if (rec.fields.size() == 4 && !rec.fields[3].empty()) {
          AVGRAD_CHECK(detail::parse_seconds(rec.fields[3], end), op, "end \"", rec.fields[3],
                       "\" is not a time in seconds");
          AVGRAD_CHECK(end > start, op, "end ", end, " is not after start ", start);
        }
        const double span = std::min(opt.seconds, end - start);
        const std::filesystem::path clip = folder / file;

        VideoOptions vo;
        vo.fps = opt.fps;
        vo.width = opt.width;
        vo.height = opt.height;
        vo.format = opt.format;
        vo.start = start;
        vo.duration = span;
        vo.max_frames = frames;
        detail::VideoU8 v = detail::decode_video_u8(clip, vo, "read_video");
        AVGRAD_CHECK(v.count > 0, op, clip.string(), ": no video frames in [", start, ", ", start + span, ") s");

        std::vector<float> audio(static_cast<std::size_t>(samples), 0.0f);
        bool has_audio = true;
        {
          // Probe for the stream first: "no audio" is data here, not necessarily an error.
          detail::Input in(clip, "read_video_audio");
          has_audio = in.find_stream(AVMEDIA_TYPE_AUDIO) >= 0;
        }
        AVGRAD_CHECK(has_audio || !opt.require_audio, op, clip.string(), ": no audio stream");
        if (has_audio) {
          AudioTrackOptions ao;
          ao.sample_rate = opt.sample_rate;
          ao.start = start;
          ao.duration = span;
          const AudioTrack at = read_video_audio(clip, ao);
          const auto n = std::min<std::int64_t>(at.samples.size(1), samples);
          std::copy(at.samples.data(), at.samples.data() + n, audio.begin());
        }

        // (T, H, W, C) interleaved -> (T, C, H, W), repeating the last frame up to T.
        const std::size_t at = video_buf.size();
        video_buf.resize(at + static_cast<std::size_t>(clip_bytes));
        std::uint8_t* dst = video_buf.data() + at;
        for (std::int64_t t = 0; t < frames; ++t) {
          const std::uint8_t* src = v.pixels.data() + std::min(t, v.count - 1) * h * w * channels;
          for (std::int64_t i = 0; i < h * w; ++i)
            for (std::int64_t c = 0; c < channels; ++c) dst[(t * channels + c) * h * w + i] = src[i * channels + c];
        }
        audio_buf.insert(audio_buf.end(), audio.begin(), audio.end());
        label_buf.push_back(label);
        kept.push_back({file, label, rec.line});
        if (static_cast<std::int64_t>(label_buf.size()) == opt.shard_clips) flush_shard();
      } catch (const Error& e) {
        if (!skip_bad) throw Error(op, avgrad::detail::concat(csv_name, ":", rec.line, ": ", e.what()));
        report.skipped.push_back({rec.line, file, e.what()});
      }
    }
    flush_shard();

    // The manifest last, atomically: its presence marks a complete cache.
    std::string m = "{\"format\":\"avgrad.clip_folder\",\"version\":1";
    const auto num = [&](std::string_view key, const std::string& value) {
      m += ",\"";
      m += key;
      m += "\":";
      m += value;
    };
    num("count", std::to_string(kept.size()));
    num("frames", std::to_string(frames));
    num("channels", std::to_string(channels));
    num("height", std::to_string(h));
    num("width", std::to_string(w));
    num("fps", detail::json_number(opt.fps));
    num("seconds", detail::json_number(opt.seconds));
    num("sample_rate", std::to_string(opt.sample_rate));
    num("audio_samples", std::to_string(samples));
    num("shard_clips", std::to_string(opt.shard_clips));
    m += ",\"classes\":[";
    for (std::size_t c = 0; c < opt.classes.size(); ++c) {
      if (c) m += ',';
      avgrad::detail::json::write_string(m, opt.classes[c]);
    }
    m += "],\"shards\":[";
    for (std::size_t s = 0; s < shard_files.size(); ++s) {
      if (s) m += ',';
      avgrad::detail::json::write_string(m, shard_files[s]);
    }
    m += "],\"clips\":[";
    for (std::size_t k = 0; k < kept.size(); ++k) {
      m += k ? ",{\"file\":" : "{\"file\":";
      avgrad::detail::json::write_string(m, kept[k].file);
      m += ",\"label\":" + std::to_string(kept[k].label) + ",\"line\":" + std::to_string(kept[k].line) + "}";
    }
    m += "],\"skipped\":[";
    for (std::size_t k = 0; k < report.skipped.size(); ++k) {
      m += k ? ",{\"line\":" : "{\"line\":";
      m += std::to_string(report.skipped[k].line) + ",\"file\":";
      avgrad::detail::json::write_string(m, report.skipped[k].file);
      m += ",\"reason\":";
      avgrad::detail::json::write_string(m, report.skipped[k].reason);
      m += '}';
    }
    m += "]}\n";
    AtomicFile mf(cache_dir / kManifest);
    mf.write(m.data(), m.size());
    mf.commit();
    // Shards of an older, larger cache in the same directory are no longer referenced.
    for (std::size_t s = shard_files.size();; ++s) {
      char name[48];
      std::snprintf(name, sizeof name, "shard-%05lld.safetensors", static_cast<long long>(s));
      std::error_code ec;
      if (!std::filesystem::remove(cache_dir / name, ec)) break;
    }
    report.clips = static_cast<std::int64_t>(kept.size());
    report.shards = static_cast<std::int64_t>(shard_files.size());
    return report;
  }

  /// Opens a cache written by build_cache. Throws avgrad::Error naming the file at fault when
  /// the manifest is missing or malformed or a shard is missing, truncated or does not match it.
  static ClipFolder open(const std::filesystem::path& cache_dir) {
    constexpr std::string_view op = "ClipFolder::open";
    auto st = std::make_shared<State>();
    const std::filesystem::path mpath = cache_dir / kManifest;
    const std::string mname = mpath.string();
    const std::string text = detail::read_text_file(mpath, op);
    avgrad::detail::json::Value root;
    try {
      root = avgrad::detail::json::parse(text);
    } catch (const Error& e) {
      throw Error(op, avgrad::detail::concat(mname, ": ", e.what()));
    }
    const auto fail = [&](const std::string& why) -> void { throw Error(op, mname + ": " + why); };
    if (!root.is_object()) fail("not a JSON object");
    const auto* format = root.find("format");
    if (!format || !format->is_string() || format->string != "avgrad.clip_folder")
      fail("not a ClipFolder manifest (\"format\" is not \"avgrad.clip_folder\")");
    const auto integer = [&](std::string_view key, std::int64_t lo) {
      const auto* v = root.find(key);
      if (!v || !v->is_int() || v->integer < lo)
        fail(avgrad::detail::concat("\"", key, "\" must be an integer >= ", lo));
      return v->integer;
    };
    const auto* version = root.find("version");
    if (!version || !version->is_int() || version->integer != 1) fail("unsupported manifest version (expected 1)");
    st->count = integer("count", 0);
    st->frames = integer("frames", 1);
    st->channels = integer("channels", 1);
    st->height = integer("height", 1);
    st->width = integer("width", 1);
    st->samples = integer("audio_samples", 0);
    st->sample_rate = integer("sample_rate", 1);
    const std::int64_t shard_clips = integer("shard_clips", 1);
    if (st->channels != 1 && st->channels != 3) fail("\"channels\" must be 1 or 3");
    const auto* fps = root.find("fps");
    if (!fps || !fps->is_number() || !(fps->as_double() > 0)) fail("\"fps\" must be a number > 0");
    st->fps = fps->as_double();
    const auto* classes = root.find("classes");
    if (!classes || !classes->is_array()) fail("\"classes\" must be an array");
    for (const auto& c : classes->items) {
      if (!c.is_string()) fail("\"classes\" must hold strings");
      st->classes.push_back(c.string);
    }
    const auto* clips = root.find("clips");
    if (!clips || !clips->is_array() || static_cast<std::int64_t>(clips->items.size()) != st->count)
      fail("\"clips\" must be an array of \"count\" entries");
    for (const auto& c : clips->items) {
      const auto* f = c.is_object() ? c.find("file") : nullptr;
      if (!f || !f->is_string()) fail("every entry of \"clips\" needs a \"file\" string");
      st->files.push_back(f->string);
    }
    const auto* shards = root.find("shards");
    if (!shards || !shards->is_array()) fail("\"shards\" must be an array");
    const std::int64_t clip_bytes = st->frames * st->channels * st->height * st->width;
    std::int64_t total = 0;
    for (const auto& s : shards->items) {
      if (!s.is_string() || s.string.find('/') != std::string::npos) fail("\"shards\" must hold file names");
      const std::int64_t n = std::min(shard_clips, st->count - total);
      if (n <= 0) fail("more shards than \"count\" clips need");
      st->shards.push_back(open_shard(cache_dir / s.string, n, clip_bytes, st->samples, *st));
      total += n;
    }
    if (total != st->count) fail(avgrad::detail::concat("the shards hold ", total, " clips, not ", st->count));
    st->shard_clips = shard_clips;
    ClipFolder out;
    out.st_ = std::move(st);
    return out;
  }

  std::int64_t size() const noexcept { return st_ ? st_->count : 0; }
  std::int64_t frames() const noexcept { return st_->frames; }
  std::int64_t channels() const noexcept { return st_->channels; }
  std::int64_t height() const noexcept { return st_->height; }
  std::int64_t width() const noexcept { return st_->width; }
  std::int64_t audio_samples() const noexcept { return st_->samples; }
  int sample_rate() const noexcept { return static_cast<int>(st_->sample_rate); }
  double fps() const noexcept { return st_->fps; }
  const std::vector<std::string>& classes() const noexcept { return st_->classes; }
  /// The clip's file name as the CSV gave it.
  const std::string& file(std::int64_t i) const { return st_->files[static_cast<std::size_t>(check(i, "file"))]; }
  std::int64_t label(std::int64_t i) const { return st_->labels[static_cast<std::size_t>(check(i, "label"))]; }

  /// Clip i: video (T, C, H, W) in [0, 1], audio (S), label. Reads only that clip's bytes.
  ClipSample get(std::int64_t i) const {
    check(i, "get");
    const auto s = static_cast<std::size_t>(i / st_->shard_clips);
    const std::int64_t j = i % st_->shard_clips;
    const Shard& sh = st_->shards[s];
    const std::int64_t clip_bytes = st_->frames * st_->channels * st_->height * st_->width;
    std::vector<std::uint8_t> px(static_cast<std::size_t>(clip_bytes));
    detail::pread_all(sh.fd.get(), px.data(), px.size(), sh.video_at + static_cast<std::uint64_t>(j * clip_bytes),
                      "ClipFolder::get", sh.path);
    ClipSample out;
    out.video = Tensor<float, Cpu>::empty(Shape{st_->frames, st_->channels, st_->height, st_->width});
    float* y = out.video.data();
    for (std::size_t k = 0; k < px.size(); ++k) y[k] = static_cast<float>(px[k]) * (1.0f / 255.0f);
    out.audio = Tensor<float, Cpu>::empty(Shape{st_->samples});
    const auto abytes = static_cast<std::size_t>(st_->samples) * sizeof(float);
    std::vector<std::uint8_t> raw(abytes);
    detail::pread_all(sh.fd.get(), raw.data(), abytes,
                      sh.audio_at + static_cast<std::uint64_t>(j) * static_cast<std::uint64_t>(abytes),
                      "ClipFolder::get", sh.path);
    float* a = out.audio.data();
    for (std::int64_t k = 0; k < st_->samples; ++k) a[k] = avgrad::detail::load_le<float>(raw.data() + 4 * k);
    out.label = st_->labels[static_cast<std::size_t>(i)];
    return out;
  }

  /// Stacks samples of equal shapes into a ClipBatch.
  static ClipBatch collate(std::vector<ClipSample>&& samples) {
    constexpr std::string_view op = "ClipFolder::collate";
    AVGRAD_CHECK(!samples.empty(), op, "no samples to collate");
    const Shape vs = samples[0].video.shape(), as = samples[0].audio.shape();
    AVGRAD_CHECK(vs.rank() == 4 && as.rank() == 1, op, "expected video (T, C, H, W) and audio (S), got ", vs, " and ",
                 as);
    const auto b = static_cast<std::int64_t>(samples.size());
    ClipBatch out;
    out.video = Tensor<float, Cpu>::empty(Shape{b, vs[0], vs[1], vs[2], vs[3]});
    out.audio = Tensor<float, Cpu>::empty(Shape{b, as[0]});
    out.labels = Tensor<std::int64_t, Cpu>::empty(Shape{b});
    const std::int64_t nv = vs.numel(), na = as.numel();
    for (std::int64_t k = 0; k < b; ++k) {
      const ClipSample& s = samples[static_cast<std::size_t>(k)];
      AVGRAD_CHECK(s.video.shape() == vs && s.audio.shape() == as, op, "sample ", k, " has video ", s.video.shape(),
                   " and audio ", s.audio.shape(), ", sample 0 has ", vs, " and ", as);
      copy_row_major(s.video, out.video.data() + k * nv);
      copy_row_major(s.audio, out.audio.data() + k * na);
      out.labels.data()[k] = s.label;
    }
    samples.clear();
    return out;
  }

 private:
  struct Shard {
    std::string path;
    detail::Fd fd;
    std::uint64_t video_at = 0, audio_at = 0;  // absolute file offsets
  };
  struct State {
    std::int64_t count = 0, frames = 0, channels = 0, height = 0, width = 0, samples = 0, sample_rate = 0;
    std::int64_t shard_clips = 1;
    double fps = 0;
    std::vector<std::string> classes, files;
    std::vector<std::int64_t> labels;
    std::vector<Shard> shards;
  };

  static void copy_row_major(const Tensor<float, Cpu>& x, float* dst) {
    if (x.is_contiguous()) {
      std::copy(x.data(), x.data() + x.numel(), dst);
    } else {
      const std::vector<float> v = x.to_vector();
      std::copy(v.begin(), v.end(), dst);
    }
  }

  std::int64_t check(std::int64_t i, std::string_view what) const {
    AVGRAD_CHECK(i >= 0 && i < size(), avgrad::detail::concat("ClipFolder::", what), "index ", i,
                 " is out of range for ", size(), " clips");
    return i;
  }

  /// Opens a shard and checks its header against the manifest without reading the data:
  /// the three tensors with the expected dtypes, shapes and a file exactly as long as they
  /// need. The labels (8 bytes a clip) are read now.
  static Shard open_shard(const std::filesystem::path& path, std::int64_t n, std::int64_t clip_bytes,
                          std::int64_t samples, State& st) {
    constexpr std::string_view op = "ClipFolder::open";
    Shard sh;
    sh.path = path.string();
    const auto fail = [&](const std::string& why) -> void { throw Error(op, sh.path + ": " + why); };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open: " + avgrad::detail::errno_text(errno));
    sh.fd = detail::Fd(fd);
    struct stat fst {};
    if (::fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) fail("not a regular file");
    const auto size = static_cast<std::uint64_t>(fst.st_size);
    if (size < 8) fail("truncated: shorter than the 8-byte header length");
    std::uint8_t len[8];
    detail::pread_all(fd, len, 8, 0, op, sh.path);
    const auto hlen = avgrad::detail::load_le<std::uint64_t>(len);
    if (hlen > (1u << 20) || hlen > size - 8) fail("bad safetensors header length");
    std::string header(static_cast<std::size_t>(hlen), '\0');
    detail::pread_all(fd, header.data(), header.size(), 8, op, sh.path);
    avgrad::detail::json::Value h;
    try {
      h = avgrad::detail::json::parse(header);
    } catch (const Error& e) {
      fail(e.what());
    }
    const std::uint64_t data = 8 + hlen;
    std::uint64_t covered = 0;
    const auto entry = [&](std::string_view name, std::string_view dtype, const std::vector<std::int64_t>& shape,
                           std::uint64_t itemsize) -> std::uint64_t {
      const auto* e = h.is_object() ? h.find(name) : nullptr;
      if (!e || !e->is_object()) fail(avgrad::detail::concat("no tensor \"", name, "\""));
      const auto* d = e->find("dtype");
      const auto* s = e->find("shape");
      const auto* o = e->find("data_offsets");
      if (!d || !d->is_string() || d->string != dtype)
        fail(avgrad::detail::concat("tensor \"", name, "\" is not stored as ", dtype));
      bool same = s && s->is_array() && s->items.size() == shape.size();
      for (std::size_t k = 0; same && k < shape.size(); ++k)
        same = s->items[k].is_int() && s->items[k].integer == shape[k];
      if (!same) fail(avgrad::detail::concat("tensor \"", name, "\" does not have the shape the manifest implies"));
      std::uint64_t nbytes = itemsize;
      for (auto x : shape) nbytes *= static_cast<std::uint64_t>(x);
      if (!o || !o->is_array() || o->items.size() != 2 || !o->items[0].is_int() || !o->items[1].is_int() ||
          o->items[0].integer < 0 || static_cast<std::uint64_t>(o->items[1].integer - o->items[0].integer) != nbytes ||
          data + static_cast<std::uint64_t>(o->items[1].integer) > size)
        fail(avgrad::detail::concat("tensor \"", name, "\" has bad data_offsets or the file is truncated"));
      covered += nbytes;
      return data + static_cast<std::uint64_t>(o->items[0].integer);
    };
    sh.video_at = entry("video", "U8", {n, st.frames, st.channels, st.height, st.width}, 1);
    (void)clip_bytes;
    sh.audio_at = entry("audio", "F32", {n, samples}, 4);
    const std::uint64_t labels_at = entry("label", "I64", {n}, 8);
    if (data + covered != size) fail("file size does not match its header (truncated or extended)");
    std::vector<std::uint8_t> raw(static_cast<std::size_t>(n) * 8);
    detail::pread_all(fd, raw.data(), raw.size(), labels_at, op, sh.path);
    for (std::int64_t k = 0; k < n; ++k) {
      const auto l = avgrad::detail::load_le<std::int64_t>(raw.data() + 8 * k);
      if (l < 0) fail(avgrad::detail::concat("clip ", k, " has negative label ", l));
      st.labels.push_back(l);
    }
    return sh;
  }

  std::shared_ptr<const State> st_;
};

}  // namespace avgrad::data
