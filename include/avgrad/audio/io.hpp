// Audio file I/O through libsndfile: decode to (channels, frames) float tensors; write WAV, FLAC, Ogg Vorbis.
//
// Optional component: include only when linking avgrad::audio_io (defines AVGRAD_WITH_AUDIO_IO).
// These functions are preprocessing, not ops: nothing here is recorded for autograd and the
// returned tensors never require grad.
//
// Error policy: every failure throws avgrad::Error whose message starts with the file path and
// says why (libsndfile's sf_strerror text when libsndfile refused the file). Nothing crashes on
// bad input and no read allocates from an untrusted header: samples are decoded in bounded
// chunks, so memory grows only with the data actually present.
//
// Truncation: a file whose header promises more audio than the file holds throws by default
// ("truncated"). ReadOptions::allow_truncated = true instead returns the complete frames that
// are present and nothing beyond them. Detection covers
//   - WAV and AIFF: the data chunk's declared byte length exceeds the file (libsndfile clips the
//     length silently and reports the header's value only in its log, which is read here);
//   - any decoder that stops early (FLAC lost sync, short reads): fewer frames than the header
//     declared could be decoded;
//   - OGG and CAF: libsndfile refuses to open a truncated file at all ("malformed").
// W64 and AU headers are clipped by libsndfile without any trace, so those read what is there.
// A WAV whose data length is the 0xFFFFFFFF placeholder of streaming writers is read to its end.
#pragma once

#include <sndfile.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/data/atomic_file.hpp"

namespace avgrad::audio {

/// What a file's header says. format is "<CONTAINER> <ENCODING>" in libsndfile's names, e.g.
/// "WAV PCM_16", "WAV FLOAT", "WAV GSM610", "FLAC PCM_24", "OGG VORBIS".
struct AudioInfo {
  std::int64_t frames = 0;
  int channels = 0;
  int sample_rate = 0;
  std::string format;
};

/// How read_audio shapes the channels.
enum class Channels {
  all,    ///< every channel: shape (channels, frames)
  mix,    ///< average of all channels: shape (1, frames)
  select  ///< ReadOptions::channel only: shape (1, frames)
};

struct ReadOptions {
  Channels channels = Channels::mix;
  int channel = 0;               ///< used when channels == Channels::select; must be < the file's channels
  std::int64_t offset = 0;       ///< first frame to read; 0 <= offset <= frames in file
  std::int64_t frames = -1;      ///< frames to read, -1: to the end; offset + frames must not pass the end
  bool allow_truncated = false;  ///< see the header comment: read what is there instead of throwing
};

/// Decoded audio: samples is (C, frames) float, integer encodings scaled to [-1, 1)
/// (x / 2^(bits-1)); float encodings are returned as stored.
struct Audio {
  Tensor<float, Cpu> samples;
  int sample_rate = 0;
};

/// WAV sample encodings write_wav can produce.
enum class WavEncoding { pcm16, pcm24, float32 };

/// Container + encoding pairs write_audio can produce. FLAC is lossless for 16/24-bit data;
/// Vorbis is lossy (use it for listening copies, not for round-trip-exact storage).
enum class AudioFormat { wav_pcm16, wav_pcm24, wav_float32, flac_pcm16, flac_pcm24, ogg_vorbis };

namespace detail {

/// libsndfile reports a failed open only through one process-wide error slot
/// (sf_strerror(NULL)); opens are serialised so each failure reads its own reason.
inline std::mutex& sndfile_open_mutex() {
  static std::mutex m;
  return m;
}

/// Owns an open SNDFILE; closes it on every path out.
class SndFile {
 public:
  SndFile() = default;
  explicit SndFile(SNDFILE* f) : f_(f) {}
  SndFile(SndFile&& o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
  SndFile& operator=(SndFile&& o) noexcept {
    if (this != &o) {
      reset();
      f_ = std::exchange(o.f_, nullptr);
    }
    return *this;
  }
  SndFile(const SndFile&) = delete;
  SndFile& operator=(const SndFile&) = delete;
  ~SndFile() { reset(); }
  SNDFILE* get() const noexcept { return f_; }
  /// Closes now and returns sf_close's code (0 on success); writers must check it because
  /// libsndfile finalises headers on close.
  int close() noexcept { return f_ ? sf_close(std::exchange(f_, nullptr)) : 0; }

 private:
  void reset() noexcept {
    if (f_) sf_close(std::exchange(f_, nullptr));
  }
  SNDFILE* f_ = nullptr;
};

inline std::string_view major_name(int major) {
  switch (major) {
    case SF_FORMAT_WAV:
      return "WAV";
    case SF_FORMAT_WAVEX:
      return "WAVEX";
    case SF_FORMAT_AIFF:
      return "AIFF";
    case SF_FORMAT_AU:
      return "AU";
    case SF_FORMAT_RAW:
      return "RAW";
    case SF_FORMAT_W64:
      return "W64";
    case SF_FORMAT_RF64:
      return "RF64";
    case SF_FORMAT_CAF:
      return "CAF";
    case SF_FORMAT_FLAC:
      return "FLAC";
    case SF_FORMAT_OGG:
      return "OGG";
    case SF_FORMAT_NIST:
      return "NIST";
    case SF_FORMAT_VOC:
      return "VOC";
    default:
      return {};
  }
}

inline std::string_view subtype_name(int subtype) {
  switch (subtype) {
    case SF_FORMAT_PCM_S8:
      return "PCM_S8";
    case SF_FORMAT_PCM_U8:
      return "PCM_U8";
    case SF_FORMAT_PCM_16:
      return "PCM_16";
    case SF_FORMAT_PCM_24:
      return "PCM_24";
    case SF_FORMAT_PCM_32:
      return "PCM_32";
    case SF_FORMAT_FLOAT:
      return "FLOAT";
    case SF_FORMAT_DOUBLE:
      return "DOUBLE";
    case SF_FORMAT_ULAW:
      return "ULAW";
    case SF_FORMAT_ALAW:
      return "ALAW";
    case SF_FORMAT_IMA_ADPCM:
      return "IMA_ADPCM";
    case SF_FORMAT_MS_ADPCM:
      return "MS_ADPCM";
    case SF_FORMAT_GSM610:
      return "GSM610";
    case SF_FORMAT_VORBIS:
      return "VORBIS";
    case SF_FORMAT_OPUS:
      return "OPUS";
    default:
      return {};
  }
}

/// "<CONTAINER> <ENCODING>"; codes missing from the short tables fall back to libsndfile's
/// own descriptive name so that newer libsndfile formats still get a readable string.
inline std::string format_name(int format) {
  auto part = [](int code, std::string_view shortname) {
    if (!shortname.empty()) return std::string(shortname);
    SF_FORMAT_INFO fi{};
    fi.format = code;
    if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name) return std::string(fi.name);
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%X", static_cast<unsigned>(code));
    return std::string(buf);
  };
  const int major = format & SF_FORMAT_TYPEMASK, subtype = format & SF_FORMAT_SUBMASK;
  return part(major, major_name(major)) + " " + part(subtype, subtype_name(subtype));
}

/// The data chunk whose declared length passes the end of the file, as (declared, present)
/// bytes, or {-1, -1}. libsndfile clips such a length without an error; its log keeps the
/// header's value as "data : <declared> (should be <present>)" (WAV) or "SSND : ..." (AIFF).
/// 0xFFFFFFFF is the "length unknown" placeholder of streaming writers, not a truncation.
inline std::pair<std::int64_t, std::int64_t> declared_data_overrun(SNDFILE* f) {
  std::string log(16384, '\0');
  sf_command(f, SFC_GET_LOG_INFO, log.data(), static_cast<int>(log.size()));
  log.resize(std::strlen(log.c_str()));
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    std::string_view line(log.data() + start, end - start);
    start = end + 1;
    const std::size_t first = line.find_first_not_of(' ');
    if (first == std::string_view::npos) continue;
    line.remove_prefix(first);
    if (!line.starts_with("data :") && !line.starts_with("SSND :")) continue;
    long long declared = 0, present = 0;
    const std::string text(line.substr(6));
    if (std::sscanf(text.c_str(), " %lld (should be %lld)", &declared, &present) != 2) continue;
    if (declared == 0xFFFFFFFFll || declared <= present) continue;
    return {declared, present};
  }
  return {-1, -1};
}

/// Opens `path` for reading with the checks every reader shares: the path names a non-empty
/// regular file (checked first so that a FIFO cannot block and the messages are precise),
/// libsndfile accepts it, the header is sane, and (unless allowed) the data is not truncated.
inline SndFile open_for_read(const std::filesystem::path& path, std::string_view op, SF_INFO& info,
                             bool allow_truncated) {
  const std::string p = path.string();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    throw Error(op, avgrad::detail::concat(p, ": cannot open: ", avgrad::detail::errno_text(err)));
  }
  AVGRAD_CHECK(S_ISREG(st.st_mode), op, p, ": not a regular file");
  AVGRAD_CHECK(st.st_size > 0, op, p, ": empty file (0 bytes)");
  info = SF_INFO{};
  SndFile f;
  {
    std::lock_guard<std::mutex> lock(sndfile_open_mutex());
    f = SndFile(sf_open(path.c_str(), SFM_READ, &info));
    if (!f.get()) throw Error(op, avgrad::detail::concat(p, ": libsndfile cannot read it: ", sf_strerror(nullptr)));
  }
  AVGRAD_CHECK(info.samplerate > 0, op, p, ": invalid sample rate ", info.samplerate, " in header");
  AVGRAD_CHECK(info.channels > 0, op, p, ": invalid channel count ", info.channels, " in header");
  AVGRAD_CHECK(info.frames >= 0, op, p, ": invalid frame count ", info.frames, " in header");
  if (!allow_truncated) {
    const auto [declared, present] = declared_data_overrun(f.get());
    AVGRAD_CHECK(declared < 0, op, p, ": truncated: header declares ", declared, " data bytes but only ", present,
                 " are present (ReadOptions::allow_truncated reads what is there)");
  }
  return f;
}

/// Throws naming the first NaN/Inf in interleaved samples, as (channel, frame).
inline void check_finite_interleaved(const float* x, std::int64_t frames, int channels, std::string_view op,
                                     const std::string& where) {
  const std::int64_t n = frames * channels;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]))
      throw Error(op, avgrad::detail::concat(where, ": non-finite sample ", x[i], " at channel ", i % channels,
                                             ", frame ", i / channels));
  }
}

/// A growable in-memory file for sf_open_virtual: writers encode into it, and the bytes
/// reach disk only through AtomicFile once libsndfile has finished (it seeks back to patch
/// headers on close, so it cannot stream straight into the atomic temp file's descriptor).
struct MemoryFile {
  std::vector<unsigned char> bytes;
  sf_count_t pos = 0;

  static MemoryFile& self(void* user) { return *static_cast<MemoryFile*>(user); }
  static sf_count_t length(void* user) { return static_cast<sf_count_t>(self(user).bytes.size()); }
  static sf_count_t seek(sf_count_t offset, int whence, void* user) {
    MemoryFile& m = self(user);
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m.pos : static_cast<sf_count_t>(m.bytes.size());
    if (base + offset < 0) return -1;
    m.pos = base + offset;
    return m.pos;
  }
  static sf_count_t read(void* dst, sf_count_t n, void* user) {
    MemoryFile& m = self(user);
    const sf_count_t size = static_cast<sf_count_t>(m.bytes.size());
    const sf_count_t k = std::max<sf_count_t>(0, std::min(n, size - m.pos));
    if (k > 0) std::memcpy(dst, m.bytes.data() + m.pos, static_cast<std::size_t>(k));
    m.pos += k;
    return k;
  }
  static sf_count_t write(const void* src, sf_count_t n, void* user) {
    MemoryFile& m = self(user);
    if (n <= 0) return 0;
    const auto end = static_cast<std::size_t>(m.pos + n);
    if (end > m.bytes.size()) m.bytes.resize(end);  // a seek past the end leaves a zero-filled gap
    std::memcpy(m.bytes.data() + m.pos, src, static_cast<std::size_t>(n));
    m.pos += n;
    return n;
  }
  static sf_count_t tell(void* user) { return self(user).pos; }
};

inline int sndfile_format(AudioFormat f) {
  switch (f) {
    case AudioFormat::wav_pcm16:
      return SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    case AudioFormat::wav_pcm24:
      return SF_FORMAT_WAV | SF_FORMAT_PCM_24;
    case AudioFormat::wav_float32:
      return SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    case AudioFormat::flac_pcm16:
      return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    case AudioFormat::flac_pcm24:
      return SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
    case AudioFormat::ogg_vorbis:
      return SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  }
  return 0;
}

}  // namespace detail

/// The header of `path`: frames, channels, sample rate, format. Throws avgrad::Error naming
/// the path for a missing, empty, unreadable, unsupported or header-truncated file.
inline AudioInfo audio_info(const std::filesystem::path& path) {
  SF_INFO info{};
  detail::SndFile f = detail::open_for_read(path, "audio_info", info, false);
  return AudioInfo{static_cast<std::int64_t>(info.frames), info.channels, info.samplerate,
                   detail::format_name(info.format)};
}

/// Decodes frames [offset, offset + frames) of `path` into a (C, n) float tensor, C = the
/// file's channels for Channels::all and 1 otherwise. Throws avgrad::Error naming the path
/// for: a missing/empty/corrupt/unsupported file, a bad channel index, an offset or length
/// that passes the end, a truncated file (unless allow_truncated), and NaN/Inf samples
/// (possible in float files), so that a returned tensor is always finite.
inline Audio read_audio(const std::filesystem::path& path, ReadOptions opt = {}) {
  constexpr std::string_view op = "read_audio";
  const std::string p = path.string();
  SF_INFO info{};
  detail::SndFile f = detail::open_for_read(path, op, info, opt.allow_truncated);
  const int channels = info.channels;
  const std::int64_t total = info.frames;
  if (opt.channels == Channels::select)
    AVGRAD_CHECK(opt.channel >= 0 && opt.channel < channels, op, p, ": channel ", opt.channel,
                 " out of range for a file with ", channels, " channel(s)");
  AVGRAD_CHECK(opt.offset >= 0 && opt.offset <= total, op, p, ": offset ", opt.offset, " is past the end of the file (",
               total, " frames)");
  AVGRAD_CHECK(opt.frames >= -1, op, p, ": frames must be >= 0 or -1 (to the end), got ", opt.frames);
  const std::int64_t want = opt.frames < 0 ? total - opt.offset : opt.frames;
  AVGRAD_CHECK(want <= total - opt.offset, op, p, ": ", want, " frames requested at offset ", opt.offset,
               " but the file has ", total, " frames");
  if (opt.offset > 0 && want > 0)
    AVGRAD_CHECK(sf_seek(f.get(), opt.offset, SEEK_SET) == opt.offset, op, p, ": cannot seek to frame ", opt.offset,
                 ": ", sf_strerror(f.get()));

  // Decode in bounded chunks: a corrupt header can promise any frame count, so memory must
  // follow the data actually decoded, never the header's claim.
  constexpr std::int64_t kChunk = 1 << 16;
  std::vector<float> inter;
  std::int64_t got = 0;
  while (got < want) {
    const std::int64_t n = std::min(kChunk, want - got);
    inter.resize(static_cast<std::size_t>((got + n) * channels));
    const sf_count_t r = sf_readf_float(f.get(), inter.data() + got * channels, n);
    if (r > 0) got += r;
    if (r < n) break;
  }
  if (got < want) {
    const int err = sf_error(f.get());
    AVGRAD_CHECK(opt.allow_truncated, op, p, ": truncated or corrupt: decoded ", opt.offset + got, " of the ", total,
                 " frames the header declares",
                 err ? avgrad::detail::concat(": ", sf_strerror(f.get())) : std::string());
  }
  inter.resize(static_cast<std::size_t>(got * channels));
  detail::check_finite_interleaved(inter.data(), got, channels, op, p);

  Audio out;
  out.sample_rate = info.samplerate;
  if (opt.channels == Channels::all) {
    out.samples = Tensor<float, Cpu>::empty(Shape{channels, got});
    float* y = out.samples.data();
    for (std::int64_t t = 0; t < got; ++t)
      for (int c = 0; c < channels; ++c) y[c * got + t] = inter[static_cast<std::size_t>(t * channels + c)];
  } else {
    out.samples = Tensor<float, Cpu>::empty(Shape{1, got});
    float* y = out.samples.data();
    if (opt.channels == Channels::select) {
      for (std::int64_t t = 0; t < got; ++t) y[t] = inter[static_cast<std::size_t>(t * channels + opt.channel)];
    } else {
      // Sum in double then divide: the mean of C equal channels is exactly that channel.
      for (std::int64_t t = 0; t < got; ++t) {
        double s = 0;
        for (int c = 0; c < channels; ++c) s += inter[static_cast<std::size_t>(t * channels + c)];
        y[t] = static_cast<float>(s / channels);
      }
    }
  }
  return out;
}

namespace detail {

/// write_audio's body; `op` is the public function's name for the error messages.
inline void write_audio_as(std::string_view op, const std::filesystem::path& path, const Tensor<float, Cpu>& samples,
                           int sample_rate, AudioFormat format) {
  const std::string p = path.string();
  AVGRAD_CHECK(samples.defined(), op, p, ": samples tensor is undefined");
  AVGRAD_CHECK(samples.dim() == 1 || samples.dim() == 2, op, p,
               ": samples must be (channels, frames) or (frames), got ", samples.shape());
  const std::int64_t channels = samples.dim() == 2 ? samples.size(0) : 1;
  const std::int64_t frames = samples.dim() == 2 ? samples.size(1) : samples.size(0);
  AVGRAD_CHECK(channels >= 1, op, p, ": samples ", samples.shape(), " have no channels");
  AVGRAD_CHECK(sample_rate > 0, op, p, ": sample rate must be > 0, got ", sample_rate);
  const int sf_format = sndfile_format(format);
  AVGRAD_CHECK(sf_format != 0, op, p, ": unknown AudioFormat ", static_cast<int>(format));

  // Planar (C, frames) -> interleaved, validating first so that a bad sample aborts the
  // write before anything is encoded.
  const std::vector<float> planar = samples.to_vector();
  for (std::size_t i = 0; i < planar.size(); ++i)
    if (!std::isfinite(planar[i]))
      throw Error(op, avgrad::detail::concat(
                          p, ": non-finite sample ", planar[i], " at channel ",
                          static_cast<std::int64_t>(i) / std::max<std::int64_t>(frames, 1), ", frame ",
                          static_cast<std::int64_t>(i) % std::max<std::int64_t>(frames, 1), "; nothing was written"));
  const int subtype = sf_format & SF_FORMAT_SUBMASK;
  // Integer encodings are quantised here rather than by libsndfile: its float->int paths
  // either scale +-1.0 asymmetrically or (with SFC_SET_CLIPPING) round toward -inf, while
  // round(x * 2^(bits-1)) is the exact inverse of its reader's code / 2^(bits-1).
  const int bits = subtype == SF_FORMAT_PCM_16 ? 16 : subtype == SF_FORMAT_PCM_24 ? 24 : 0;
  std::vector<float> inter_f;
  std::vector<int> inter_i;
  if (bits) {
    const double scale = std::ldexp(1.0, bits - 1);
    // libsndfile's int samples are full-scale 32-bit: a 24-bit code c is passed as c << 8.
    const int shift = 32 - bits;
    inter_i.resize(planar.size());
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t t = 0; t < frames; ++t) {
        const double v = std::clamp(static_cast<double>(planar[static_cast<std::size_t>(c * frames + t)]), -1.0, 1.0);
        const long code = std::clamp(std::lround(v * scale), static_cast<long>(-scale), static_cast<long>(scale) - 1);
        inter_i[static_cast<std::size_t>(t * channels + c)] = static_cast<int>(code * (1L << shift));
      }
  } else {
    inter_f.resize(planar.size());
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t t = 0; t < frames; ++t)
        inter_f[static_cast<std::size_t>(t * channels + c)] = planar[static_cast<std::size_t>(c * frames + t)];
  }

  MemoryFile mem;
  SF_VIRTUAL_IO vio{&MemoryFile::length, &MemoryFile::seek, &MemoryFile::read, &MemoryFile::write, &MemoryFile::tell};
  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = static_cast<int>(std::min<std::int64_t>(channels, 1 << 30));
  info.format = sf_format;
  SndFile f;
  {
    std::lock_guard<std::mutex> lock(sndfile_open_mutex());
    f = SndFile(sf_open_virtual(&vio, SFM_WRITE, &info, &mem));
    if (!f.get())
      throw Error(op, avgrad::detail::concat(p, ": libsndfile cannot encode ", channels, " channel(s) at ", sample_rate,
                                             " Hz as ", format_name(sf_format), ": ", sf_strerror(nullptr)));
  }
  const sf_count_t wrote =
      bits ? sf_writef_int(f.get(), inter_i.data(), frames) : sf_writef_float(f.get(), inter_f.data(), frames);
  AVGRAD_CHECK(wrote == frames, op, p, ": encoder wrote ", wrote, " of ", frames, " frames: ", sf_strerror(f.get()));
  const int rc = f.close();
  AVGRAD_CHECK(rc == 0, op, p, ": encoder failed to finish the file: ", sf_error_number(rc));

  AtomicFile out(path);
  out.write(mem.bytes.data(), mem.bytes.size());
  out.commit();
}

}  // namespace detail

/// Encodes `samples` ((C, frames) or (frames) for mono) at `sample_rate` and replaces `path`
/// atomically: the file is encoded in memory, then written through AtomicFile (temp file in
/// the same directory, fsync, rename), so `path` holds its old contents or the complete new
/// file, never a partial one. Checks before anything touches the disk: samples defined with
/// rank 1 or 2 and at least one channel, sample_rate > 0, every sample finite (else throws
/// naming the channel and frame).
/// Integer encodings (PCM 16/24 in WAV or FLAC) clip to [-1, 1] and store round(x · 2^(bits-1))
/// (halves away from zero) limited to the integer range: reading returns x within half a step,
/// +1.0 becomes the largest code (1 - 2^-(bits-1) on reading), and any x = k / 2^(bits-1) reads
/// back exactly. float32 WAV and Vorbis store values unclipped.
inline void write_audio(const std::filesystem::path& path, const Tensor<float, Cpu>& samples, int sample_rate,
                        AudioFormat format) {
  detail::write_audio_as("write_audio", path, samples, sample_rate, format);
}

/// write_audio for WAV; see write_audio for clipping, validation and atomicity.
inline void write_wav(const std::filesystem::path& path, const Tensor<float, Cpu>& samples, int sample_rate,
                      WavEncoding encoding = WavEncoding::pcm16) {
  const AudioFormat f = encoding == WavEncoding::pcm16   ? AudioFormat::wav_pcm16
                        : encoding == WavEncoding::pcm24 ? AudioFormat::wav_pcm24
                                                         : AudioFormat::wav_float32;
  detail::write_audio_as("write_wav", path, samples, sample_rate, f);
}

}  // namespace avgrad::audio
