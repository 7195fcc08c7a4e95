// Video decoding through FFmpeg: frames as (T, C, H, W) float tensors, the audio track as mono float.
//
// Optional component: include only when linking avgrad::video_io (defines AVGRAD_WITH_VIDEO_IO).
// These functions are preprocessing, not ops: nothing is recorded for autograd.
//
// Time: every time (VideoOptions::start, frame timestamps) is in seconds from the first
// timestamp of the stream being read, so a container whose video starts at 25 ms (common in
// Matroska) still has its first frame at t = 0.
//
// Frame-rate conversion (VideoOptions::fps > 0): output frame k stands for time
// t_k = start + k / fps and shows the decoded frame whose timestamp is nearest to t_k (ties go
// to the earlier frame); frames are repeated or dropped as needed, never blended. Output times
// run while t_k < the end of the window: start + duration, or the end of the video (last
// frame's timestamp + its duration), whichever comes first. A 1 s clip therefore gives
// ceil(fps) frames. With fps = 0 every decoded frame whose timestamp lies in the window is
// returned at its own time.
//
// Error policy: every failure throws avgrad::Error whose message starts with the file path and
// says why (FFmpeg's av_strerror text when FFmpeg refused something). The path must name a
// non-empty regular file (so a FIFO cannot block) and is opened only through FFmpeg's "file"
// protocol (a playlist inside the file cannot reach the network). A stream that ends clearly
// before the duration its header declares throws "truncated", and a packet the demuxer or
// decoder rejects throws "corrupt"/"unreadable" naming its time, unless allow_truncated: then
// the frames that did decode are returned (decoding skips the bad packets). The decoder is always
// drained at end of file, so the last frames (held back by B-frame reordering) are returned.
// FFmpeg's own log is silenced on first use unless the program already changed its level.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"

namespace avgrad::data {

/// What the container and the first video/audio streams say, without decoding.
struct VideoInfo {
  double duration = 0;      ///< seconds: the video stream's duration, else the container's; 0 if unknown
  double fps = 0;           ///< the video stream's average frame rate; 0 if unknown
  std::int64_t frames = 0;  ///< frame count from the header; 0 if the container does not store it
  int width = 0, height = 0;
  bool has_audio = false;
  int audio_sample_rate = 0, audio_channels = 0;
  std::string container;    ///< demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "avi", "matroska,webm"
  std::string video_codec;  ///< e.g. "h264", "mpeg4", "mjpeg", "vp8"
  std::string audio_codec;  ///< empty without an audio stream
};

enum class PixelFormat { gray, rgb };

struct VideoOptions {
  double fps = 0;             ///< output frame rate; 0: every decoded frame (see header comment)
  int width = 0, height = 0;  ///< output size; 0: native. One of them 0: keep the aspect ratio
  PixelFormat format = PixelFormat::rgb;
  double start = 0;              ///< window start in seconds, >= 0
  double duration = -1;          ///< window length in seconds, > 0, or -1: to the end
  std::int64_t max_frames = -1;  ///< stop after this many output frames; -1: no limit
  bool allow_truncated = false;  ///< return what decoded from a cut or damaged file
};

/// Decoded frames: frames is (T, C, H, W) float in [0, 1], C = 1 (gray) or 3 (RGB);
/// timestamps[t] is the time frame t stands for (the output time t_k when converting the frame
/// rate, else the frame's own timestamp); fps is the output rate (the native rate for fps = 0).
struct Video {
  Tensor<float, Cpu> frames;
  std::vector<double> timestamps;
  double fps = 0;
};

struct AudioTrackOptions {
  int sample_rate = 16000;       ///< output rate in Hz
  double start = 0;              ///< window start in seconds, >= 0
  double duration = -1;          ///< window length in seconds, > 0, or -1: to the end
  bool allow_truncated = false;  ///< return what decoded from a cut or damaged file
};

/// An audio track: samples is (1, S) float, the mean of the source channels, resampled.
struct AudioTrack {
  Tensor<float, Cpu> samples;
  int sample_rate = 0;
};

namespace detail {

inline std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  if (av_strerror(err, buf, sizeof buf) < 0) std::snprintf(buf, sizeof buf, "FFmpeg error %d", err);
  return buf;
}

/// FFmpeg logs to stderr at "info" by default; a data loader should not. A program that set
/// its own level before the first call keeps it.
inline void quiet_ffmpeg_log_once() {
  static const bool done = [] {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_QUIET);
    return true;
  }();
  (void)done;
}

struct FormatDeleter {
  void operator()(AVFormatContext* p) const noexcept { avformat_close_input(&p); }
};
struct CodecDeleter {
  void operator()(AVCodecContext* p) const noexcept { avcodec_free_context(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* p) const noexcept { av_frame_free(&p); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const noexcept { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* p) const noexcept { sws_freeContext(p); }
};
struct SwrDeleter {
  void operator()(SwrContext* p) const noexcept { swr_free(&p); }
};
using FormatPtr = std::unique_ptr<AVFormatContext, FormatDeleter>;
using CodecPtr = std::unique_ptr<AVCodecContext, CodecDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using SwrPtr = std::unique_ptr<SwrContext, SwrDeleter>;

/// Owns an AVChannelLayout (a custom layout holds an allocated channel map).
struct ChannelLayout {
  AVChannelLayout l{};
  ChannelLayout() = default;
  ChannelLayout(const ChannelLayout&) = delete;
  ChannelLayout& operator=(const ChannelLayout&) = delete;
  ~ChannelLayout() { av_channel_layout_uninit(&l); }
};

/// Owns an AVDictionary of options; avformat_open_input leaves unused entries in it.
struct Dict {
  AVDictionary* d = nullptr;
  Dict() = default;
  Dict(const Dict&) = delete;
  Dict& operator=(const Dict&) = delete;
  ~Dict() { av_dict_free(&d); }
};

inline FramePtr alloc_frame(std::string_view op, const std::string& p) {
  FramePtr f(av_frame_alloc());
  AVGRAD_CHECK(f, op, p, ": out of memory allocating an AVFrame");
  return f;
}

/// Seconds covered by one frame: the average frame rate, else the guessed real rate, else 25 fps.
inline double frame_interval(const AVStream* st) {
  for (AVRational r : {st->avg_frame_rate, st->r_frame_rate})
    if (r.num > 0 && r.den > 0) return av_q2d(av_inv_q(r));
  return 1.0 / 25;
}

/// An open input file: the checks every reader shares (regular non-empty file, "file"
/// protocol only), stream probing, and on request one stream's decoder.
class Input {
 public:
  Input(const std::filesystem::path& path, std::string_view op) : op_(op), path_(path.string()) {
    quiet_ffmpeg_log_once();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      throw Error(op_, avgrad::detail::concat(path_, ": cannot open: ", avgrad::detail::errno_text(err)));
    }
    AVGRAD_CHECK(S_ISREG(st.st_mode), op_, path_, ": not a regular file");
    AVGRAD_CHECK(st.st_size > 0, op_, path_, ": empty file (0 bytes)");
    // "file:" keeps a path containing ':' from being read as a protocol name; the whitelist
    // stops playlists and concat scripts inside the file from opening network resources.
    Dict opts;
    av_dict_set(&opts.d, "protocol_whitelist", "file", 0);
    const std::string url = "file:" + path_;
    AVFormatContext* raw = nullptr;
    int rc = avformat_open_input(&raw, url.c_str(), nullptr, &opts.d);
    if (rc < 0) fail("FFmpeg cannot open it: ", av_error_text(rc));
    fmt_.reset(raw);
    rc = avformat_find_stream_info(fmt_.get(), nullptr);
    if (rc < 0) fail("cannot read stream information: ", av_error_text(rc));
  }

  AVFormatContext* fmt() const noexcept { return fmt_.get(); }
  const std::string& path() const noexcept { return path_; }
  std::string_view op() const noexcept { return op_; }

  template <class... Args> [[noreturn]] void fail(Args&&... parts) const {
    throw Error(op_, avgrad::detail::concat(path_, ": ", std::forward<Args>(parts)...));
  }

  /// The best stream of `type`, or -1. Cover art (an attached picture) is not a video.
  int find_stream(AVMediaType type) const {
    const int best = av_find_best_stream(fmt_.get(), type, -1, -1, nullptr, 0);
    if (best >= 0 && !is_cover(best)) return best;
    for (unsigned i = 0; i < fmt_->nb_streams; ++i)
      if (fmt_->streams[i]->codecpar->codec_type == type && !is_cover(static_cast<int>(i))) return static_cast<int>(i);
    return -1;
  }

  /// Opens the decoder of stream `index` (single-threaded: results must not depend on timing).
  CodecPtr open_decoder(int index) const {
    const AVStream* st = fmt_->streams[index];
    const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) fail("no decoder for codec \"", avcodec_get_name(st->codecpar->codec_id), "\" in this FFmpeg build");
    CodecPtr ctx(avcodec_alloc_context3(codec));
    if (!ctx) fail("out of memory allocating a decoder");
    int rc = avcodec_parameters_to_context(ctx.get(), st->codecpar);
    if (rc < 0) fail("bad codec parameters: ", av_error_text(rc));
    ctx->thread_count = 1;
    ctx->pkt_timebase = st->time_base;
    rc = avcodec_open2(ctx.get(), codec, nullptr);
    if (rc < 0) fail("cannot open the ", codec->name, " decoder: ", av_error_text(rc));
    return ctx;
  }

  /// Seconds of stream `index` the header declares (stream duration, else the container's), or 0.
  double declared_duration(int index) const {
    const AVStream* st = fmt_->streams[index];
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
      return static_cast<double>(st->duration) * av_q2d(st->time_base);
    if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0)
      return static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    return 0;
  }
  /// The longest length the header claims for stream `index` itself, or 0: its duration
  /// field, Matroska's per-stream DURATION tag, and for video the frame count over the frame
  /// rate (an AVI cut before its index reports the duration of what is left, but keeps the
  /// frame count of its header). A container duration is not used: it may belong to a longer
  /// stream.
  double stream_duration(int index) const {
    const AVStream* st = fmt_->streams[index];
    double d = 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
      d = static_cast<double>(st->duration) * av_q2d(st->time_base);
    if (const AVDictionaryEntry* tag = av_dict_get(st->metadata, "DURATION", nullptr, 0)) {
      int hh = 0, mm = 0;
      double ss = 0;
      if (std::sscanf(tag->value, "%d:%d:%lf", &hh, &mm, &ss) == 3 && hh >= 0 && mm >= 0 && ss >= 0)
        d = std::max(d, hh * 3600.0 + mm * 60.0 + ss);
    }
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && st->nb_frames > 0)
      d = std::max(d, static_cast<double>(st->nb_frames) * frame_interval(st));
    return d;
  }

  /// What decode() saw: whether it reached the end of the file, and the first packet the
  /// demuxer or decoder rejected (empty if none) with its time in seconds.
  struct Decoded {
    bool eof = false;
    std::string error;
    double error_at = 0;
  };

  /// Demuxes and decodes stream `index` through `ctx`, calling on_frame(frame) for each
  /// decoded frame in presentation order until it returns false (early stop) or the file
  /// ends; at the end the decoder is drained. A packet the decoder rejects is recorded and
  /// skipped, and a demuxer error ends the stream like the end of file (what a cut file
  /// does): the caller decides whether that is an error (see allow_truncated).
  Decoded decode(int index, AVCodecContext* ctx, const std::function<bool(AVFrame*)>& on_frame) const {
    PacketPtr pkt(av_packet_alloc());
    if (!pkt) fail("out of memory allocating an AVPacket");
    FramePtr frame = alloc_frame(op_, path_);
    const char* kind = av_get_media_type_string(ctx->codec_type);
    const AVStream* st = fmt_->streams[index];
    Decoded result;
    auto note = [&](const char* what, int rc, std::int64_t ts) {
      if (!result.error.empty()) return;
      result.error = avgrad::detail::concat(what, " ", kind ? kind : "", " data: ", av_error_text(rc));
      const std::int64_t zero = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
      result.error_at = ts != AV_NOPTS_VALUE ? static_cast<double>(ts - zero) * av_q2d(st->time_base) : 0.0;
    };
    // Pulls every frame the decoder has ready; false when on_frame asked to stop.
    auto receive = [&]() -> bool {
      for (;;) {
        const int rc = avcodec_receive_frame(ctx, frame.get());
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return true;
        if (rc < 0) {
          note("corrupt", rc, AV_NOPTS_VALUE);
          return true;
        }
        const bool more = on_frame(frame.get());
        av_frame_unref(frame.get());
        if (!more) return false;
      }
    };
    for (;;) {
      const int rc = av_read_frame(fmt_.get(), pkt.get());
      if (rc == AVERROR_EOF) break;
      if (rc < 0) {
        note("unreadable", rc, AV_NOPTS_VALUE);
        break;
      }
      if (pkt->stream_index != index) {
        av_packet_unref(pkt.get());
        continue;
      }
      const std::int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      int sent = avcodec_send_packet(ctx, pkt.get());
      if (sent == AVERROR(EAGAIN)) {
        // The decoder is full: drain it, then the packet must be accepted.
        if (!receive()) return result;
        sent = avcodec_send_packet(ctx, pkt.get());
      }
      av_packet_unref(pkt.get());
      if (sent < 0 && sent != AVERROR(EAGAIN)) note("corrupt", sent, ts);
      if (!receive()) return result;
    }
    // End of file: flush so that frames held back for reordering come out.
    const int rc = avcodec_send_packet(ctx, nullptr);
    if (rc < 0 && rc != AVERROR_EOF) note("corrupt", rc, AV_NOPTS_VALUE);
    receive();
    result.eof = true;
    return result;
  }

 private:
  bool is_cover(int i) const { return (fmt_->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0; }

  std::string_view op_;
  std::string path_;
  FormatPtr fmt_;
};

inline void check_window(std::string_view op, const std::string& p, double start, double duration) {
  AVGRAD_CHECK(std::isfinite(start) && start >= 0, op, p, ": start must be finite and >= 0, got ", start);
  AVGRAD_CHECK(duration == -1 || (std::isfinite(duration) && duration > 0), op, p,
               ": duration must be > 0 or -1 (to the end), got ", duration);
}

/// Frames decoded and converted to 8-bit interleaved pixels: (T, H, W, C) row-major.
struct VideoU8 {
  std::vector<std::uint8_t> pixels;
  std::vector<double> timestamps;
  std::int64_t count = 0;
  int width = 0, height = 0, channels = 0;
  double fps = 0;
};

inline const char* pix_fmt_name(AVPixelFormat f) {
  const char* n = av_get_pix_fmt_name(f);
  return n ? n : "unknown";
}

/// Converts decoded frames to GRAY8/RGB24 at the output size. Keeps one swscale context and
/// rebuilds it only when the source format, size, colour matrix or range changes.
class FrameConverter {
 public:
  FrameConverter(int width, int height, PixelFormat format)
      : w_(width),
        h_(height),
        c_(format == PixelFormat::gray ? 1 : 3),
        dst_fmt_(format == PixelFormat::gray ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24) {
    // swscale's SIMD paths may write up to a vector past the last pixel of a row: rows are
    // padded and the buffer has slack.
    stride_ = (w_ * c_ + 63) / 64 * 64;
    buf_.resize(static_cast<std::size_t>(stride_) * static_cast<std::size_t>(h_) + 64);
  }

  /// Appends the converted pixels of `f` to `out` (h * w * c bytes).
  void append(const AVFrame* f, std::vector<std::uint8_t>& out, const Input& in) {
    const auto src_fmt = static_cast<AVPixelFormat>(f->format);
    if (f->width <= 0 || f->height <= 0 || src_fmt == AV_PIX_FMT_NONE) in.fail("decoder returned an empty frame");
    const bool full_range = f->color_range == AVCOL_RANGE_JPEG || src_fmt == AV_PIX_FMT_YUVJ420P ||
                            src_fmt == AV_PIX_FMT_YUVJ422P || src_fmt == AV_PIX_FMT_YUVJ444P ||
                            src_fmt == AV_PIX_FMT_YUVJ440P || src_fmt == AV_PIX_FMT_YUVJ411P;
    const std::array<int, 5> key{f->width, f->height, static_cast<int>(src_fmt), static_cast<int>(f->colorspace),
                                 full_range ? 1 : 0};
    if (!sws_ || key != key_) {
      // Area averaging when shrinking (no aliasing), bilinear when enlarging.
      const int flags = (w_ < f->width || h_ < f->height ? SWS_AREA : SWS_BILINEAR) | SWS_ACCURATE_RND |
                        SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP;
      sws_.reset(sws_getContext(f->width, f->height, src_fmt, w_, h_, dst_fmt_, flags, nullptr, nullptr, nullptr));
      if (!sws_)
        in.fail("cannot convert ", f->width, "x", f->height, " ", pix_fmt_name(src_fmt), " frames to ", w_, "x", h_,
                " ", av_get_pix_fmt_name(dst_fmt_));
      // The decoder's colour matrix and range, not swscale's BT.601 limited-range guess.
      const int* coeffs = sws_getCoefficients(f->colorspace);
      sws_setColorspaceDetails(sws_.get(), coeffs, full_range ? 1 : 0, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                               1 << 16, 1 << 16);
      key_ = key;
    }
    std::uint8_t* dst[4] = {buf_.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {stride_, 0, 0, 0};
    const int rows = sws_scale(sws_.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (rows != h_) in.fail("swscale produced ", rows, " of ", h_, " rows");
    const std::size_t row = static_cast<std::size_t>(w_) * static_cast<std::size_t>(c_);
    for (int y = 0; y < h_; ++y) {
      const std::uint8_t* src = buf_.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(stride_);
      out.insert(out.end(), src, src + row);
    }
  }

 private:
  int w_, h_, c_;
  AVPixelFormat dst_fmt_;
  int stride_ = 0;
  std::vector<std::uint8_t> buf_;
  SwsPtr sws_;
  std::array<int, 5> key_{};
};

/// The output size for a source of sw x sh under the requested (0 = native / keep aspect).
inline std::pair<int, int> output_size(int sw, int sh, int w, int h) {
  if (w > 0 && h > 0) return {w, h};
  if (w > 0) return {w, std::max(1, static_cast<int>(std::lround(double(w) * sh / sw)))};
  if (h > 0) return {std::max(1, static_cast<int>(std::lround(double(h) * sw / sh))), h};
  return {sw, sh};
}

/// read_video's decoding, to 8-bit pixels (ClipFolder stores these as they are).
inline VideoU8 decode_video_u8(const std::filesystem::path& path, const VideoOptions& opt, std::string_view op) {
  const std::string p = path.string();
  AVGRAD_CHECK(std::isfinite(opt.fps) && opt.fps >= 0, op, p, ": fps must be finite and >= 0, got ", opt.fps);
  AVGRAD_CHECK(opt.width >= 0 && opt.width <= 16384 && opt.height >= 0 && opt.height <= 16384, op, p,
               ": width and height must be in [0, 16384], got ", opt.width, "x", opt.height);
  AVGRAD_CHECK(opt.format == PixelFormat::gray || opt.format == PixelFormat::rgb, op, p, ": unknown PixelFormat ",
               static_cast<int>(opt.format));
  AVGRAD_CHECK(opt.max_frames >= -1, op, p, ": max_frames must be >= 0 or -1 (no limit), got ", opt.max_frames);
  check_window(op, p, opt.start, opt.duration);

  Input in(path, op);
  const int index = in.find_stream(AVMEDIA_TYPE_VIDEO);
  if (index < 0) in.fail("no video stream");
  AVStream* st = in.fmt()->streams[index];
  const int sw = st->codecpar->width, sh = st->codecpar->height;
  if (sw <= 0 || sh <= 0) in.fail("video stream has no frame size (", sw, "x", sh, ")");
  CodecPtr ctx = in.open_decoder(index);

  VideoU8 out;
  std::tie(out.width, out.height) = output_size(sw, sh, opt.width, opt.height);
  out.channels = opt.format == PixelFormat::gray ? 1 : 3;
  const double interval = frame_interval(st);
  out.fps = opt.fps > 0 ? opt.fps : 1.0 / interval;
  const double tb = av_q2d(st->time_base);
  const std::int64_t zero = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
  const double stop = opt.duration > 0 ? opt.start + opt.duration : std::numeric_limits<double>::infinity();
  constexpr double eps = 1e-6;  // timestamps are rationals rounded to double

  if (opt.start > 0) {
    // Land on the key frame at or before the frame preceding `start` (it may be the nearest one).
    const auto ts = zero + static_cast<std::int64_t>(std::floor((opt.start - interval) / tb));
    if (av_seek_frame(in.fmt(), index, std::max(ts, zero), AVSEEK_FLAG_BACKWARD) < 0)
      av_seek_frame(in.fmt(), index, zero, AVSEEK_FLAG_BACKWARD);  // unseekable: decode from the start
  }

  FrameConverter conv(out.width, out.height, opt.format);
  const std::int64_t limit = opt.max_frames < 0 ? std::numeric_limits<std::int64_t>::max() : opt.max_frames;
  auto emit = [&](const AVFrame* f, double t) {
    conv.append(f, out.pixels, in);
    out.timestamps.push_back(t);
    ++out.count;
  };
  FramePtr held = alloc_frame(op, p);  // the latest decoded frame, not yet known to be unneeded
  bool have_held = false;
  double held_t = 0, held_dur = interval, last_t = -std::numeric_limits<double>::infinity();
  std::int64_t k = 0;  // next output index when converting the frame rate
  bool done = false;

  auto on_frame = [&](AVFrame* f) -> bool {
    double t = f->best_effort_timestamp != AV_NOPTS_VALUE ? static_cast<double>(f->best_effort_timestamp - zero) * tb
                                                          : (std::isfinite(last_t) ? last_t + interval : 0.0);
    // Duplicate or backwards timestamps (broken files) would make "nearest" ambiguous: drop.
    if (t <= last_t + eps) return true;
    last_t = t;
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
    const std::int64_t dur = f->duration;
#else
    const std::int64_t dur = f->pkt_duration;
#endif
    const double fdur = dur > 0 ? static_cast<double>(dur) * tb : interval;
    if (opt.fps <= 0) {
      if (t >= stop - eps || out.count >= limit) return done = true, false;
      if (t >= opt.start - eps) emit(f, t);
      return true;
    }
    // Every pending output time at least as near to the held frame as to this one gets the held frame.
    for (;;) {
      const double tk = opt.start + static_cast<double>(k) / opt.fps;
      if (out.count >= limit || tk >= stop - eps) return done = true, false;
      // eps: times are rounded rationals, so an exact tie must not depend on the rounding.
      if (!have_held || tk - held_t > t - tk + eps) break;
      emit(held.get(), tk);
      ++k;
    }
    av_frame_unref(held.get());
    if (av_frame_ref(held.get(), f) < 0) in.fail("out of memory keeping a decoded frame");
    have_held = true;
    held_t = t;
    held_dur = fdur;
    return true;
  };
  const Input::Decoded dec = in.decode(index, ctx.get(), on_frame);

  if (dec.eof && !done) {
    // The video ends at the last frame's time + its duration: output times before that get it.
    const double end = have_held ? held_t + held_dur : last_t;
    if (opt.fps > 0 && have_held) {
      for (;;) {
        const double tk = opt.start + static_cast<double>(k) / opt.fps;
        if (out.count >= limit || tk >= std::min(stop, end) - eps) break;
        emit(held.get(), tk);
        ++k;
      }
    }
    // A header that declares this stream clearly longer than what decoded means a cut file.
    const double declared = in.stream_duration(index);
    const double reached = std::isfinite(last_t) ? (have_held ? end : last_t + interval) : 0.0;
    const double tolerance = std::max(0.25, 2 * interval);
    if (!opt.allow_truncated && declared > 0 && reached < std::min(declared, stop) - tolerance)
      in.fail("truncated: the header declares ", declared, " s of video but it ends at ", reached,
              " s (VideoOptions::allow_truncated returns what decoded)");
    if (out.count == 0 && opt.start > 0 && std::isfinite(last_t) && opt.start >= reached)
      in.fail("start ", opt.start, " s is past the end of the video (", reached, " s)");
  }
  if (!opt.allow_truncated && !dec.error.empty())
    in.fail(dec.error, " (at ", dec.error_at, " s; VideoOptions::allow_truncated returns what decoded)");
  return out;
}

/// Mean of the channels of planar float audio.
inline std::vector<float> mix_to_mono(const std::vector<std::vector<float>>& planes, std::size_t n) {
  std::vector<float> mono(n);
  for (std::size_t i = 0; i < n; ++i) {
    double s = 0;  // the mean of equal channels is exactly that channel
    for (const auto& pl : planes) s += pl[i];
    mono[i] = static_cast<float>(s / static_cast<double>(planes.size()));
  }
  return mono;
}

}  // namespace detail

/// The header of `path`: duration, frame rate, size, codecs, whether it has audio. Throws
/// avgrad::Error naming the path for a missing, empty, unreadable or video-less file.
inline VideoInfo video_info(const std::filesystem::path& path) {
  detail::Input in(path, "video_info");
  const int v = in.find_stream(AVMEDIA_TYPE_VIDEO);
  if (v < 0) in.fail("no video stream");
  const AVStream* st = in.fmt()->streams[v];
  VideoInfo info;
  info.duration = in.declared_duration(v);
  for (AVRational r : {st->avg_frame_rate, st->r_frame_rate})
    if (r.num > 0 && r.den > 0) {
      info.fps = av_q2d(r);
      break;
    }
  info.frames = std::max<std::int64_t>(st->nb_frames, 0);
  info.width = st->codecpar->width;
  info.height = st->codecpar->height;
  info.container = in.fmt()->iformat->name;
  info.video_codec = avcodec_get_name(st->codecpar->codec_id);
  const int a = in.find_stream(AVMEDIA_TYPE_AUDIO);
  if (a >= 0) {
    const AVCodecParameters* cp = in.fmt()->streams[a]->codecpar;
    info.has_audio = true;
    info.audio_sample_rate = cp->sample_rate;
    info.audio_channels = cp->ch_layout.nb_channels;
    info.audio_codec = avcodec_get_name(cp->codec_id);
  }
  return info;
}

/// Decodes the frames of `path` in the options' window as a (T, C, H, W) float tensor in
/// [0, 1] (pixel / 255), converted from the decoder's colour matrix and range to full-range
/// RGB (or luma for gray) and resized with swscale (area when shrinking, bilinear when
/// enlarging). See the header comment for times and frame-rate conversion. Throws
/// avgrad::Error naming the path for bad options, a missing/empty/corrupt/truncated file, a
/// file without a video stream, or a start past the end. A video with no frames in the window
/// gives T = 0.
inline Video read_video(const std::filesystem::path& path, const VideoOptions& opt = {}) {
  detail::VideoU8 v = detail::decode_video_u8(path, opt, "read_video");
  Video out;
  out.fps = v.fps;
  out.timestamps = std::move(v.timestamps);
  const std::int64_t h = v.height, w = v.width, c = v.channels;
  out.frames = Tensor<float, Cpu>::empty(Shape{v.count, c, h, w});
  std::array<float, 256> lut;
  for (int i = 0; i < 256; ++i) lut[static_cast<std::size_t>(i)] = static_cast<float>(i) / 255.0f;
  float* y = out.frames.data();
  const std::uint8_t* x = v.pixels.data();
  // (T, H, W, C) interleaved -> (T, C, H, W) planar.
  for (std::int64_t t = 0; t < v.count; ++t)
    for (std::int64_t i = 0; i < h * w; ++i)
      for (std::int64_t ch = 0; ch < c; ++ch) y[(t * c + ch) * h * w + i] = lut[x[(t * h * w + i) * c + ch]];
  return out;
}

/// Decodes the best audio stream of `path`, averages its channels to mono and resamples it to
/// opt.sample_rate with swresample; samples is (1, S). S for the whole track is exactly
/// round(decoded source samples · rate / source rate) (the resampler's tail is flushed, then
/// trimmed or zero-padded to that length); the window [start, start + duration) is then cut at
/// sample round(start · rate) and is shorter only where the track ends. Sample 0 is the first
/// decoded sample. A track with no samples gives S = 0. Throws avgrad::Error naming the path
/// for bad options, a missing/empty/corrupt/truncated file or one without an audio stream.
inline AudioTrack read_video_audio(const std::filesystem::path& path, const AudioTrackOptions& opt) {
  constexpr std::string_view op = "read_video_audio";
  const std::string p = path.string();
  AVGRAD_CHECK(opt.sample_rate > 0 && opt.sample_rate <= 1'000'000, op, p, ": sample_rate must be in (0, 1e6], got ",
               opt.sample_rate);
  detail::check_window(op, p, opt.start, opt.duration);
  detail::Input in(path, op);
  const int index = in.find_stream(AVMEDIA_TYPE_AUDIO);
  if (index < 0) in.fail("no audio stream");
  detail::CodecPtr ctx = in.open_decoder(index);

  const double rate = opt.sample_rate;
  const double stop = opt.duration > 0 ? opt.start + opt.duration : std::numeric_limits<double>::infinity();
  detail::SwrPtr swr;
  int in_rate = 0, in_fmt = -1;
  detail::ChannelLayout layout;
  AVChannelLayout& in_layout = layout.l;
  std::vector<std::vector<float>> planes;
  std::int64_t in_samples = 0;
  std::size_t produced = 0;

  // Converts `n` input samples (data == nullptr: flush) into the planes.
  auto convert = [&](const std::uint8_t** data, int n) {
    for (;;) {
      const int cap = std::max(swr_get_out_samples(swr.get(), n), 0) + 32;
      std::vector<std::uint8_t*> outp(planes.size());
      for (std::size_t c = 0; c < planes.size(); ++c) {
        planes[c].resize(produced + static_cast<std::size_t>(cap));
        outp[c] = reinterpret_cast<std::uint8_t*>(planes[c].data() + produced);
      }
      const int got = swr_convert(swr.get(), outp.data(), cap, data, n);
      if (got < 0) in.fail("cannot resample the audio: ", detail::av_error_text(got));
      produced += static_cast<std::size_t>(got);
      for (auto& pl : planes) pl.resize(produced);
      // Input is consumed in one call; when flushing, repeat until the resampler is empty.
      if (data || got == 0) return;
    }
  };

  auto on_frame = [&](AVFrame* f) -> bool {
    if (f->nb_samples <= 0) return true;
    if (!swr) {
      in_rate = f->sample_rate;
      in_fmt = f->format;
      if (in_rate <= 0) in.fail("audio frame has sample rate ", in_rate);
      if (f->ch_layout.nb_channels <= 0) in.fail("audio frame has no channels");
      if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in_layout, f->ch_layout.nb_channels);
      else if (av_channel_layout_copy(&in_layout, &f->ch_layout) < 0)
        in.fail("out of memory copying a channel layout");
      // Same layout in and out: swresample only resamples and converts to planar float; the
      // mono mix is a plain mean below (as audio::read_audio's Channels::mix).
      SwrContext* raw = nullptr;
      const int rc = swr_alloc_set_opts2(&raw, &in_layout, AV_SAMPLE_FMT_FLTP, opt.sample_rate, &in_layout,
                                         static_cast<AVSampleFormat>(in_fmt), in_rate, 0, nullptr);
      swr.reset(raw);
      if (rc < 0 || !swr) in.fail("cannot set up the resampler: ", detail::av_error_text(rc));
      const int irc = swr_init(swr.get());
      if (irc < 0) in.fail("cannot set up the resampler: ", detail::av_error_text(irc));
      planes.assign(static_cast<std::size_t>(in_layout.nb_channels), {});
    } else if (f->sample_rate != in_rate || f->format != in_fmt || f->ch_layout.nb_channels != in_layout.nb_channels) {
      in.fail("audio format changes mid-stream (", in_rate, " Hz -> ", f->sample_rate, " Hz)");
    }
    convert(const_cast<const std::uint8_t**>(f->extended_data), f->nb_samples);
    in_samples += f->nb_samples;
    // Enough decoded to cover the window (plus the resampler's delay): stop reading.
    return static_cast<double>(in_samples) / in_rate < stop + 0.1;
  };
  const detail::Input::Decoded dec = in.decode(index, ctx.get(), on_frame);
  const bool reached_eof = dec.eof;

  std::vector<float> mono;
  if (swr) {
    convert(nullptr, 0);
    const auto exact = static_cast<std::size_t>(std::llround(static_cast<double>(in_samples) * rate / in_rate));
    for (auto& pl : planes) pl.resize(exact, 0.0f);
    mono = detail::mix_to_mono(planes, exact);
    if (reached_eof && !opt.allow_truncated) {
      const double declared = in.stream_duration(index), reached = static_cast<double>(in_samples) / in_rate;
      if (declared > 0 && reached < std::min(declared, stop) - 0.25)
        in.fail("truncated: the header declares ", declared, " s of audio but it ends at ", reached,
                " s (AudioTrackOptions::allow_truncated returns what decoded)");
    }
  }
  if (!opt.allow_truncated && !dec.error.empty())
    in.fail(dec.error, " (at ", dec.error_at, " s; AudioTrackOptions::allow_truncated returns what decoded)");
  const auto total = static_cast<std::int64_t>(mono.size());
  const std::int64_t first = std::min<std::int64_t>(std::llround(opt.start * rate), total);
  const std::int64_t last =
      opt.duration > 0 ? std::min<std::int64_t>(first + std::llround(opt.duration * rate), total) : total;
  if (opt.start > 0 && first >= total && reached_eof)
    in.fail("start ", opt.start, " s is past the end of the audio (", static_cast<double>(total) / rate, " s)");
  AudioTrack out;
  out.sample_rate = opt.sample_rate;
  out.samples = Tensor<float, Cpu>::empty(Shape{1, last - first});
  std::copy(mono.begin() + first, mono.begin() + last, out.samples.data());
  return out;
}

/// read_video_audio of the whole track at `sample_rate` Hz.
inline AudioTrack read_video_audio(const std::filesystem::path& path, int sample_rate = 16000) {
  AudioTrackOptions opt;
  opt.sample_rate = sample_rate;
  return read_video_audio(path, opt);
}

}  // namespace avgrad::data
