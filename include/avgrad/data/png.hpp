// Dependency-free PNG writer (8-bit grayscale or RGB, stored deflate blocks) for figures such as clip strips.
//
// Figures are small, so compression does not matter; what matters is that any viewer opens
// them and that nothing outside the header is linked. The image data therefore goes into a
// zlib stream made of uncompressed ("stored", BTYPE 00) deflate blocks, which every inflater
// accepts, with the Adler-32 trailer zlib requires; each chunk carries its CRC-32. Rows use
// filter type 0 (none). The file is written atomically (data/atomic_file.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/data/atomic_file.hpp"

namespace avgrad::png {

/// CRC-32 (ISO 3309 / ITU-T V.42, reflected polynomial 0xEDB88320) as PNG chunks use it.
/// `crc` continues a running value: crc32(b, crc32(a)) == crc32(a ++ b).
inline std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (const std::uint8_t b : bytes) crc = table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

/// Adler-32 (RFC 1950), the checksum closing a zlib stream.
inline std::uint32_t adler32(std::span<const std::uint8_t> bytes, std::uint32_t adler = 1) {
  std::uint32_t a = adler & 0xFFFFu, b = adler >> 16;
  // 5552 is the largest run for which b cannot overflow 32 bits before the modulo (zlib's NMAX).
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::size_t end = std::min(bytes.size(), i + 5552);
    for (; i < end; ++i) {
      a += bytes[i];
      b += a;
    }
    a %= 65521u;
    b %= 65521u;
  }
  return (b << 16) | a;
}

/// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4) holding `raw`.
inline std::vector<std::uint8_t> zlib_stored(std::span<const std::uint8_t> raw) {
  std::vector<std::uint8_t> z;
  z.reserve(raw.size() + raw.size() / 65535 * 5 + 16);
  z.push_back(0x78);  // CMF: deflate, 32 KiB window
  z.push_back(0x01);  // FLG: no dictionary, fastest; (0x78 << 8 | 0x01) % 31 == 0
  std::size_t pos = 0;
  do {
    const std::size_t len = std::min<std::size_t>(raw.size() - pos, 65535);
    const bool last = pos + len == raw.size();
    z.push_back(last ? 1 : 0);  // BFINAL, BTYPE 00 (stored), padded to the byte boundary
    z.push_back(static_cast<std::uint8_t>(len & 0xFF));
    z.push_back(static_cast<std::uint8_t>(len >> 8));
    z.push_back(static_cast<std::uint8_t>(~len & 0xFF));
    z.push_back(static_cast<std::uint8_t>((~len >> 8) & 0xFF));
    z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos),
             raw.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  } while (pos < raw.size());
  const std::uint32_t ad = adler32(raw);
  for (int s = 24; s >= 0; s -= 8) z.push_back(static_cast<std::uint8_t>(ad >> s));
  return z;
}

namespace detail {

inline void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

inline void put_chunk(std::vector<std::uint8_t>& out, std::string_view type, std::span<const std::uint8_t> data) {
  put_be32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type.begin(), type.end());
  out.insert(out.end(), data.begin(), data.end());
  // The CRC covers the type and the data, not the length.
  put_be32(out, crc32(std::span<const std::uint8_t>(out.data() + start, out.size() - start)));
}

}  // namespace detail

/// The PNG file image of a width × height picture with `channels` 8-bit samples per pixel
/// (1: grayscale, 3: RGB), rows top to bottom, pixels interleaved.
inline std::vector<std::uint8_t> encode(std::span<const std::uint8_t> pixels, std::int64_t width, std::int64_t height,
                                        int channels) {
  AVGRAD_CHECK(channels == 1 || channels == 3, "png", "channels must be 1 (gray) or 3 (RGB), got ", channels);
  AVGRAD_CHECK(width > 0 && height > 0 && width <= 0x7FFFFFFF && height <= 0x7FFFFFFF, "png", "invalid size ", width,
               "x", height);
  const auto row = static_cast<std::size_t>(width) * static_cast<std::size_t>(channels);
  AVGRAD_CHECK(pixels.size() == row * static_cast<std::size_t>(height), "png", "expected ", row * height, " bytes for ",
               width, "x", height, "x", channels, ", got ", pixels.size());
  std::vector<std::uint8_t> raw;
  raw.reserve((row + 1) * static_cast<std::size_t>(height));
  for (std::int64_t y = 0; y < height; ++y) {
    raw.push_back(0);  // filter type: none
    const auto* r = pixels.data() + static_cast<std::size_t>(y) * row;
    raw.insert(raw.end(), r, r + row);
  }
  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<std::uint8_t> ihdr;
  detail::put_be32(ihdr, static_cast<std::uint32_t>(width));
  detail::put_be32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back(8);                      // bit depth
  ihdr.push_back(channels == 1 ? 0 : 2);  // colour type: gray or truecolour
  ihdr.insert(ihdr.end(), {0, 0, 0});     // deflate, adaptive filtering, no interlace
  detail::put_chunk(out, "IHDR", ihdr);
  detail::put_chunk(out, "IDAT", zlib_stored(raw));
  detail::put_chunk(out, "IEND", {});
  return out;
}

/// Writes a PNG (see encode) atomically to `path`.
inline void write(const std::filesystem::path& path, std::span<const std::uint8_t> pixels, std::int64_t width,
                  std::int64_t height, int channels) {
  const std::vector<std::uint8_t> bytes = encode(pixels, width, height, channels);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace avgrad::png
