// Whole-file I/O for tensor files: atomic writes and checked whole-file reads.
//
// AtomicFile keeps one promise: the target path holds either its old contents or the
// complete new contents, never a truncated mix. Bytes go to "<path>.tmp.<pid>.<random>" in
// the same directory (so the rename cannot cross file systems); commit() fsyncs the temp
// file, renames it over the target and fsyncs the directory so the rename itself is durable.
// Any failure, or destruction without commit(), removes the temp file. Every error is an
// avgrad::Error naming the path and the errno text. POSIX only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"

namespace avgrad {

namespace detail {

inline std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

/// Closes a descriptor, retrying nothing: after EINTR the descriptor is gone on Linux.
inline int close_fd(int fd) { return fd >= 0 ? ::close(fd) : 0; }

/// Writes all of [data, data+n) to fd, resuming after partial writes and EINTR.
/// Returns 0 or the errno of the failure.
inline int write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const std::size_t chunk = std::min<std::size_t>(n, std::size_t(1) << 30);
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

/// A hard-to-guess suffix: two processes (or two threads of one) never share a temp name
/// in practice, and O_EXCL makes a clash an error rather than a shared file anyway.
inline std::uint64_t temp_suffix() {
  static std::uint64_t counter = 0;
  std::uint64_t x = std::random_device{}();
  x = (x << 32) ^ std::random_device{}();
  x ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return x + 0x9E3779B97F4A7C15ull * ++counter;
}

}  // namespace detail

/// A file being written atomically. Usage: AtomicFile f(path); f.write(...)...; f.commit();
/// Not copyable; moving transfers the pending temp file.
class AtomicFile {
 public:
  /// Creates the temp file beside `path` (mode 0666 & ~umask, or the mode of an existing
  /// target). Throws avgrad::Error naming `path` when the directory is missing or not writable.
  explicit AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
    AVGRAD_CHECK(!path_.empty() && path_.has_filename(), "atomic_write", "invalid target path '", path_.string(), "'");
    mode_t mode = 0666;
    bool keep_mode = false;
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) {
      AVGRAD_CHECK(!S_ISDIR(st.st_mode), "atomic_write", path_.string(), ": is a directory");
      mode = st.st_mode & 07777;
      keep_mode = true;
    }
    int err = 0;
    for (int attempt = 0; attempt < 16; ++attempt) {
      tmp_ = path_.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(detail::temp_suffix());
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
      if (fd_ >= 0) break;
      err = errno;
      if (err != EEXIST && err != EINTR) break;
    }
    if (fd_ < 0) {
      tmp_.clear();
      throw Error("atomic_write", detail::concat(path_.string(), ": cannot create a temporary file in '",
                                                 directory().string(), "': ", detail::errno_text(err)));
    }
    // open() applied the umask; an existing target's exact mode is kept.
    if (keep_mode) (void)::fchmod(fd_, mode);
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  AtomicFile(AtomicFile&& o) noexcept
      : path_(std::move(o.path_)), tmp_(std::exchange(o.tmp_, {})), fd_(std::exchange(o.fd_, -1)), bytes_(o.bytes_) {}
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile() { abandon(); }

  const std::filesystem::path& path() const noexcept { return path_; }
  /// The temp file's path while a write is pending (empty after commit or abandon).
  const std::string& temp_path() const noexcept { return tmp_; }
  std::uint64_t bytes_written() const noexcept { return bytes_; }

  /// Appends n bytes. On failure the temp file is removed and avgrad::Error names the path.
  void write(const void* data, std::size_t n) {
    AVGRAD_CHECK(fd_ >= 0, "atomic_write", path_.string(), ": write after commit or failure");
    if (int err = detail::write_all(fd_, data, n)) fail("write failed", err);
    bytes_ += n;
  }
  void write(std::string_view s) { write(s.data(), s.size()); }

  /// fsync, rename over the target, fsync the directory. After this the target holds exactly
  /// the bytes written. On failure the target is untouched and the temp file is removed.
  void commit() {
    AVGRAD_CHECK(fd_ >= 0, "atomic_write", path_.string(), ": commit after commit or failure");
    if (::fsync(fd_) != 0) fail("fsync failed", errno);
    const int fd = std::exchange(fd_, -1);
    if (detail::close_fd(fd) != 0) fail("close failed", errno);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename failed", errno);
    tmp_.clear();
    // The rename is durable only once the directory entry is on disk. Failing to open the
    // directory (e.g. no read permission) leaves a complete file, so it is not an error.
    const int dfd = ::open(directory().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      const int rc = ::fsync(dfd);
      const int err = errno;
      detail::close_fd(dfd);
      // Some file systems refuse fsync on directories (EINVAL); the data itself is synced.
      if (rc != 0 && err != EINVAL && err != EROFS)
        throw Error("atomic_write", detail::concat(path_.string(), ": fsync of directory '", directory().string(),
                                                   "' failed: ", detail::errno_text(err)));
    }
  }

  /// Drops the pending write: closes and removes the temp file. The target is untouched.
  void abandon() noexcept {
    if (fd_ >= 0) detail::close_fd(std::exchange(fd_, -1));
    if (!tmp_.empty()) {
      ::unlink(tmp_.c_str());
      tmp_.clear();
    }
  }

 private:
  std::filesystem::path directory() const {
    auto dir = path_.parent_path();
    return dir.empty() ? std::filesystem::path(".") : dir;
  }
  [[noreturn]] void fail(const char* what, int err) {
    abandon();
    throw Error("atomic_write", detail::concat(path_.string(), ": ", what, ": ", detail::errno_text(err)));
  }

  std::filesystem::path path_;
  std::string tmp_;
  int fd_ = -1;
  std::uint64_t bytes_ = 0;
};

/// Replaces `path` with `bytes` atomically (see AtomicFile).
inline void write_file_atomic(const std::filesystem::path& path, const void* data, std::size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

/// The whole contents of a regular file. `op` names the reader in errors
/// ("safetensors", "load_npy", ...); every failure names the path and the errno text.
inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path, std::string_view op) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(op, detail::concat(path.string(), ": cannot open: ", detail::errno_text(errno)));
  struct Closer {
    int fd;
    ~Closer() { detail::close_fd(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw Error(op, detail::concat(path.string(), ": cannot stat: ", detail::errno_text(errno)));
  if (!S_ISREG(st.st_mode)) throw Error(op, detail::concat(path.string(), ": not a regular file"));
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + got, std::min<std::size_t>(bytes.size() - got, std::size_t(1) << 30));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(op, detail::concat(path.string(), ": read failed: ", detail::errno_text(errno)));
    }
    if (r == 0) break;  // the file shrank while we read it; the parser sees the short length
    got += static_cast<std::size_t>(r);
  }
  bytes.resize(got);
  return bytes;
}

}  // namespace avgrad
