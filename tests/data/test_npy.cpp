// .npy and .npz files: exact values of files written by numpy.save / numpy.savez, round trips
// of every element type, byte-exact output against committed files numpy reads
// (make_fixtures.py), and every malformed-input path throwing avgrad::Error naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "avgrad/data/npy.hpp"

#include "data/file_support.hpp"

namespace fs = std::filesystem;
using namespace avgrad;
using namespace avgrad::testing;

namespace {

/// A .npy image with a hand-written header dict (padded to 64) and data bytes.
std::vector<std::uint8_t> npy_image(const std::string& dict, const std::vector<std::uint8_t>& data = {},
                                    int major = 1) {
  std::string h = dict;
  const std::size_t pre = major == 1 ? 10 : 12;
  h.append((64 - (pre + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  out += static_cast<char>(h.size() & 0xFF);
  out += static_cast<char>((h.size() >> 8) & 0xFF);
  if (major != 1) out += std::string(2, '\0');
  out += h;
  out.append(data.begin(), data.end());
  return {out.begin(), out.end()};
}

/// Checks t against an expected record (as double or int64 values).
template <class T> void expect_values(const Tensor<T, Cpu>& t, const Expected& e) {
  EXPECT_EQ(t.shape(), Shape(e.shape));
  auto v = t.to_vector();
  if constexpr (Floating<T>) {
    ASSERT_EQ(v.size(), e.f.size());
    for (std::size_t k = 0; k < v.size(); ++k) EXPECT_EQ(v[k], static_cast<T>(e.f[k])) << k;
  } else {
    ASSERT_EQ(v.size(), e.i.size());
    for (std::size_t k = 0; k < v.size(); ++k) EXPECT_EQ(static_cast<std::int64_t>(v[k]), e.i[k]) << k;
  }
}

const Expected& expected(const std::string& file, const std::string& name) {
  for (const auto& e : kExpected)
    if (file == e.file && name == e.name) return e;
  throw std::runtime_error("no expected record " + file + ":" + name);
}

}  // namespace

// ---- files written by numpy --------------------------------------------------------------------

TEST(NpyNumpy, ReadsEveryFixtureExactly) {
  int checked = 0;
  for (const Expected& e : kExpected) {
    const std::string file = e.file;
    if (file.size() < 4 || file.substr(file.size() - 4) != ".npy") continue;
    SCOPED_TRACE(file);
    ++checked;
    const fs::path p = kFixtures / file;
    const std::string dt = e.dtype;
    const char kind = dt[1];
    if (kind == 'f') {
      expect_values(load_npy<double>(p), e);
      expect_values(load_npy<float>(p), e);
      expect_error([&] { load_npy<std::int32_t>(p); }, {"load_npy", file, dt, "int32"});
    } else if (kind == 'b') {
      expect_values(load_npy<bool>(p), e);
      expect_values(load_npy<std::uint8_t>(p), e);
      expect_error([&] { load_npy<std::int64_t>(p); }, {file, "'|b1'", "int64"});
    } else {
      expect_values(load_npy<std::int64_t>(p), e);
      const bool fits32 = std::all_of(e.i.begin(), e.i.end(), [](std::int64_t x) { return x == std::int32_t(x); });
      if (fits32)
        expect_values(load_npy<std::int32_t>(p), e);
      else
        expect_error([&] { load_npy<std::int32_t>(p); }, {file, "does not fit in int32"});
      if (dt == "|u1") expect_values(load_npy<std::uint8_t>(p), e);
      expect_error([&] { load_npy<float>(p); }, {file, dt, "float32"});
    }
  }
  EXPECT_GE(checked, 11);
  const auto bytes = read_all(kFixtures / "v2_f4.npy");
  EXPECT_EQ(read_npy_header(bytes, "v2").major, 2);
}

TEST(NpyNumpy, RejectsFortranOrderAndBigEndianClearly) {
  expect_error([&] { load_npy<float>(kFixtures / "fortran.npy"); },
               {"load_npy", "fortran.npy", "fortran_order=True", "np.ascontiguousarray"});
  expect_error([&] { load_npy<float>(kFixtures / "big_endian.npy"); }, {"big_endian.npy", "'>f4'", "big-endian"});
}

TEST(NpzNumpy, ReadsSavezArchive) {
  const auto z = NpzFile::open(kFixtures / "arrays.npz");
  EXPECT_EQ(z.names(), (std::vector<std::string>{"flag", "labels", "nested/name", "weight"}));
  expect_values(z.get<float>("weight"), expected("arrays.npz", "weight"));
  expect_values(z.get<std::int64_t>("labels"), expected("arrays.npz", "labels"));
  expect_values(z.get<bool>("flag"), expected("arrays.npz", "flag"));
  expect_values(z.get<double>("nested/name"), expected("arrays.npz", "nested/name"));
  EXPECT_EQ(z.descr("labels"), "<i8");
  EXPECT_EQ(z.shape("flag").rank(), 0);
  expect_error([&] { z.get<float>("labels"); }, {"load_npz", "arrays.npz", "labels.npy", "'<i8'", "float32"});
  expect_error([&] { z.get<float>("nope"); }, {"arrays.npz", "no array named \"nope\""});
  expect_error([&] { load_npz<double>(kFixtures / "arrays.npz"); }, {"flag.npy", "'|b1'", "float64"});
}

TEST(NpzNumpy, RejectsCompressedArchive) {
  expect_error(
      [&] { NpzFile::open(kFixtures / "compressed.npz"); },
      {"compressed.npz", "x.npy", "compressed npz not supported; save with numpy.savez, not savez_compressed"});
}

// ---- round trips -------------------------------------------------------------------------------

template <class T> void expect_same(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto x = a.to_vector(), y = b.to_vector();
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t k = 0; k < x.size(); ++k) EXPECT_TRUE(x[k] == y[k] || (x[k] != x[k] && y[k] != y[k])) << k;
}

TEST(NpyRoundTrip, EveryElementTypeEmptyRankZeroNonContiguous) {
  TempDir dir("avgrad_npy_");
  Generator g(11);
  auto f32 = randn<float>(Shape{2, 3, 4}, g);
  auto f64 = from_vector<double>({-0.0, kInf, kNaN, std::numeric_limits<double>::denorm_min(), 1e300});
  auto i32 = from_vector<std::int32_t>(
      {std::numeric_limits<std::int32_t>::min(), 0, std::numeric_limits<std::int32_t>::max()});
  auto i64 = from_vector<std::int64_t>(
      {std::numeric_limits<std::int64_t>::min(), 1, std::numeric_limits<std::int64_t>::max()}, Shape{1, 3});
  auto b = from_vector<bool>({true, false, true, true}, Shape{2, 2});
  auto u8 = from_vector<std::uint8_t>({0, 127, 255});
  auto base = from_vector<float>({0, 1, 2, 3, 4, 5}, Shape{2, 3});
  auto tr = Tensor<float, Cpu>::from_storage(base.storage(), Shape{3, 2}, Strides{1, 3}, 0);
  auto rank0 = scalar<double>(2.75);
  auto empty = zeros<std::int64_t>(Shape{0, 5});

  save_npy(dir / "f32.npy", f32);
  save_npy(dir / "f64.npy", f64);
  save_npy(dir / "i32.npy", i32);
  save_npy(dir / "i64.npy", i64);
  save_npy(dir / "b.npy", b);
  save_npy(dir / "u8.npy", u8);
  save_npy(dir / "tr.npy", tr);
  save_npy(dir / "rank0.npy", rank0);
  save_npy(dir / "empty.npy", empty);
  expect_same(load_npy<float>(dir / "f32.npy"), f32);
  expect_same(load_npy<double>(dir / "f64.npy"), f64);
  expect_same(load_npy<std::int32_t>(dir / "i32.npy"), i32);
  expect_same(load_npy<std::int64_t>(dir / "i64.npy"), i64);
  expect_same(load_npy<bool>(dir / "b.npy"), b);
  expect_same(load_npy<std::uint8_t>(dir / "u8.npy"), u8);
  EXPECT_EQ(load_npy<float>(dir / "tr.npy").to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(load_npy<double>(dir / "rank0.npy").shape().rank(), 0);
  EXPECT_EQ(load_npy<double>(dir / "rank0.npy").item(), 2.75);
  EXPECT_EQ(load_npy<std::int64_t>(dir / "empty.npy").shape(), (Shape{0, 5}));

  NpzWriter w;
  w.add("f32", f32).add("f64", f64).add("i32", i32).add("i64", i64).add("b", b).add("u8", u8).add("tr", tr);
  w.add("rank0", rank0).add("empty", empty).add("d\xc3\xa9j\xc3\xa0", scalar<float>(1));
  w.write(dir / "all.npz");
  const auto z = NpzFile::open(dir / "all.npz");
  EXPECT_EQ(z.size(), 10u);
  expect_same(z.get<float>("f32"), f32);
  expect_same(z.get<double>("f64"), f64);
  expect_same(z.get<std::int32_t>("i32"), i32);
  expect_same(z.get<std::int64_t>("i64"), i64);
  expect_same(z.get<bool>("b"), b);
  expect_same(z.get<std::uint8_t>("u8"), u8);
  EXPECT_EQ(z.get<float>("tr").to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(z.get<double>("rank0").item(), 2.75);
  EXPECT_EQ(z.get<std::int64_t>("empty").shape(), (Shape{0, 5}));
  EXPECT_EQ(z.get<float>("d\xc3\xa9j\xc3\xa0").item(), 1.f);

  save_npz<double>(dir / "one.npz", {{"a", f64}, {"c", rank0}});
  const auto m = load_npz<double>(dir / "one.npz");
  ASSERT_EQ(m.size(), 2u);
  expect_same(m.at("a"), f64);
  expect_error([&] { w.add("f32", f32); }, {"save_npz", "\"f32\"", "twice"});
}

TEST(NpyRoundTrip, HeaderLayout) {
  const auto bytes = npy_to_bytes(from_vector<float>({1, 2, 3, 4, 5, 6}, Shape{2, 3}));
  ASSERT_EQ(bytes.size(), 128u + 24);  // the data starts at a multiple of 64
  EXPECT_EQ(bytes[6], 1);
  EXPECT_EQ(bytes[7], 0);
  EXPECT_EQ(bytes[8] | (bytes[9] << 8), 118);
  const std::string header(bytes.begin() + 10, bytes.begin() + 128);
  EXPECT_EQ(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u) << header;
  EXPECT_EQ(header.back(), '\n');
  const auto b1 = npy_to_bytes(from_vector<std::int64_t>({1}));
  const std::string h1(b1.begin() + 10, b1.end() - 8);
  EXPECT_EQ(h1.rfind("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", 0), 0u) << h1;
  const auto b0 = npy_to_bytes(scalar<bool>(true));
  const std::string h0(b0.begin() + 10, b0.end() - 1);
  EXPECT_EQ(h0.rfind("{'descr': '|b1', 'fortran_order': False, 'shape': (), }", 0), 0u) << h0;
  EXPECT_EQ(read_npy_header(npy_to_bytes(scalar<std::uint8_t>(3)), "x").descr, "|u1");
}

// The committed avgrad_written.npy/.npz are what numpy was shown to read (make_fixtures.py).
TEST(NpyRoundTrip, MatchesCommittedFilesReadByNumpy) {
  auto base = from_vector<float>({0, 0.5f, 1, 1.5f, 2, 2.5f}, Shape{2, 3});
  auto w = Tensor<float, Cpu>::from_storage(base.storage(), Shape{3, 2}, Strides{1, 3}, 0);
  NpzWriter z;
  z.add("d", from_vector<double>({1.0 / 3.0, -2.0})).add("mask", from_vector<bool>({true, false, true}));
  z.add("step", scalar<std::int64_t>(42));
  if (std::getenv("AVGRAD_REGENERATE_FIXTURES")) {
    save_npy(kFixtures / "avgrad_written.npy", w);
    z.write(kFixtures / "avgrad_written.npz");
  }
  EXPECT_EQ(read_all(kFixtures / "avgrad_written.npy"), npy_to_bytes(w));
  EXPECT_EQ(read_all(kFixtures / "avgrad_written.npz"), z.to_bytes());
}

// ---- malformed files ---------------------------------------------------------------------------

TEST(NpyErrors, MissingFile) {
  TempDir dir("avgrad_npy_");
  expect_error([&] { load_npy<float>(dir / "nope.npy"); }, {"load_npy", "nope.npy", "No such file"});
  expect_error([&] { NpzFile::open(dir / "nope.npz"); }, {"load_npz", "nope.npz", "No such file"});
}

TEST(NpyErrors, TruncatedAtEveryCutPoint) {
  TempDir dir("avgrad_npy_");
  const auto full = npy_to_bytes(from_vector<double>({1, 2, 3}));
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    const std::vector<std::uint8_t> part(full.begin(), full.begin() + static_cast<long>(cut));
    try {
      npy_from_bytes<double>(part, "cut.npy");
      ADD_FAILURE() << "cut at " << cut << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.npy"), std::string::npos) << e.what();
    }
  }
  const fs::path p = dir / "trunc.npy";
  write_raw(p, std::vector<std::uint8_t>(full.begin(), full.end() - 3));
  expect_error([&] { load_npy<double>(p); }, {p.string(), "truncated data", "needs 24 bytes, the file has 21"});
}

TEST(NpyErrors, MalformedHeaders) {
  const std::vector<std::uint8_t> d4(4, 0);
  const std::vector<std::pair<std::vector<std::uint8_t>, std::string>> cases = {
      {npy_image("{'descr': '<f4', 'fortran_order': False}", d4), "lacks one of"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", d4), "unexpected key 'extra'"},
      {npy_image("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", d4),
       "duplicate key 'descr'"},
      {npy_image("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", d4), "True or False"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", d4), "non-negative integers"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 4, 5, 6, 7, 8, 9)}", d4),
       "more than 8 dimensions"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", d4), "64-bit range"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", d4), "overflows"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", d4), "expected ',' or '}'"},
      {npy_image("{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", d4), "expected ',' or '}'"},
      {npy_image("{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}", d4), "expected ':'"},
      {npy_image("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", d4), "structured dtypes"},
      {npy_image("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", d4), "is not supported"},
      {npy_image("{'descr': '|O8', 'fortran_order': False, 'shape': (1,)}", d4), "object array"},
      {npy_image("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", d4), "'<c8' is not supported"},
      {npy_image("{'descr': '<U4', 'fortran_order': False, 'shape': (1,)}", d4), "'<U4' is not supported"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", d4), "truncated data"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", d4), "after the header dict"},
      {npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", d4, 4),
       "unsupported .npy format version 4.0"},
      {std::vector<std::uint8_t>{'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0, 0, 0}, "bad magic"},
  };
  for (const auto& c : cases) {  // (no structured bindings: clang 14 cannot capture them)
    SCOPED_TRACE(c.second);
    expect_error([&] { npy_from_bytes<float>(c.first, "bad.npy"); }, {"load_npy", "bad.npy", c.second});
  }
  // accepted variants: version 2.0, Python-2 long suffix, double quotes, trailing bytes
  auto ok = npy_from_bytes<float>(
      npy_image("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1L,)}", {0, 0, 128, 63, 9, 9}, 2),
      "ok.npy");
  EXPECT_EQ(ok.to_vector(), std::vector<float>{1.f});
}

TEST(NpzErrors, TruncatedCorruptAndNotAnArchive) {
  TempDir dir("avgrad_npy_");
  NpzWriter w;
  w.add("a", from_vector<float>({1, 2, 3})).add("b", scalar<std::int64_t>(5));
  const auto full = w.to_bytes();
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<std::uint8_t> part(full.begin(), full.begin() + static_cast<long>(cut));
    try {
      auto z = NpzFile::from_bytes(std::move(part), "cut.npz");
      z.get<float>("a");
      z.get<std::int64_t>("b");
      ADD_FAILURE() << "cut at " << cut << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.npz"), std::string::npos) << e.what();
    }
  }
  auto corrupt = full;
  corrupt[30 + 5 + 64] ^= 0x40;  // a data byte of a.npy: local header (30) + name (5) + npy header (64)
  expect_error([&] { NpzFile::from_bytes(corrupt, "crc.npz"); }, {"crc.npz", "a.npy", "CRC-32 mismatch"});
  const fs::path p = dir / "x.npz";
  write_raw(p, npy_to_bytes(scalar<float>(1)));
  expect_error([&] { NpzFile::open(p); }, {p.string(), "use load_npy"});
  write_raw(p, std::vector<std::uint8_t>(100, 7));
  expect_error([&] { NpzFile::open(p); }, {p.string(), "end-of-central-directory"});
}
