// safetensors reader/writer, the strict JSON reader behind it, and atomic file replacement:
// exact values of a file serialised from torch tensors, round trips of every element type,
// byte-exact output against a committed file that torch reads (make_fixtures.py), and every
// malformed-input path throwing avgrad::Error that names the file.
#include <gtest/gtest.h>
#include <sys/wait.h>
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

#include "avgrad/data/atomic_file.hpp"
#include "avgrad/data/detail/json.hpp"
#include "avgrad/data/safetensors.hpp"

#include "data/file_support.hpp"

namespace fs = std::filesystem;
using namespace avgrad;
using namespace avgrad::testing;

namespace {

/// A file image from a header text and data bytes (the header is used verbatim).
std::vector<std::uint8_t> image(const std::string& header, const std::vector<std::uint8_t>& data = {},
                                std::uint64_t declared = std::numeric_limits<std::uint64_t>::max()) {
  const std::uint64_t n = declared == std::numeric_limits<std::uint64_t>::max() ? header.size() : declared;
  std::string bytes(8, '\0');
  for (int k = 0; k < 8; ++k) bytes[k] = static_cast<char>(n >> (8 * k));
  bytes += header;
  bytes.append(data.begin(), data.end());
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

bool same_double(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

/// The tensors of avgrad_written.safetensors (restated in make_fixtures.py).
SafetensorsWriter avgrad_written() {
  auto base = from_vector<float>({0, 0.5f, 1, 1.5f, 2, 2.5f}, Shape{2, 3});
  auto w = Tensor<float, Cpu>::from_storage(base.storage(), Shape{3, 2}, Strides{1, 3}, 0);  // transpose
  SafetensorsWriter sw;
  sw.add("w", w)
      .add("d", from_vector<double>({1.0 / 3.0, -2.0}))
      .add("step", scalar<std::int64_t>(42))
      .add("i", from_vector<std::int32_t>({-7, 8}))
      .add("mask", from_vector<bool>({true, false, true}))
      .add("u", from_vector<std::uint8_t>({1, 2, 250}))
      .add("empty", zeros<float>(Shape{0, 2}));
  return sw;
}
const std::map<std::string, std::string> kAvgradMeta{{"avgrad.format_version", "1"}};

}  // namespace

// ---- values written by torch ---------------------------------------------------------------------

TEST(SafetensorsTorch, ReadsEveryDtypeExactly) {
  const auto f = SafetensorsFile::open(kFixtures / "torch_tensors.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("source"), "make_fixtures.py");
  std::size_t checked = 0;
  for (const Expected& e : kExpected) {
    if (std::string(e.file) != "torch_tensors.safetensors") continue;
    SCOPED_TRACE(e.name);
    ++checked;
    ASSERT_TRUE(f.has(e.name));
    EXPECT_EQ(f.dtype(e.name), e.dtype);
    EXPECT_EQ(f.shape(e.name), Shape(e.shape));
    const std::string dt = e.dtype;
    if (dt[0] == 'F' || dt == "BF16") {
      auto d = f.get<double>(e.name).to_vector();
      auto s = f.get<float>(e.name).to_vector();
      ASSERT_EQ(d.size(), e.f.size());
      for (std::size_t k = 0; k < d.size(); ++k) {
        EXPECT_TRUE(same_double(d[k], e.f[k])) << k << ": " << d[k] << " vs " << e.f[k];
        EXPECT_TRUE(same_double(s[k], static_cast<float>(e.f[k]))) << k;
      }
      expect_error([&] { f.get<std::int64_t>(e.name); }, {"torch_tensors.safetensors", e.name, dt, "int64"});
    } else if (dt == "BOOL") {
      auto b = f.get<bool>(e.name).to_vector();
      auto u = f.get<std::uint8_t>(e.name).to_vector();
      ASSERT_EQ(b.size(), e.i.size());
      for (std::size_t k = 0; k < b.size(); ++k) {
        EXPECT_EQ(b[k], e.i[k] != 0);
        EXPECT_EQ(u[k], e.i[k]);
      }
      expect_error([&] { f.get<std::int32_t>(e.name); }, {"BOOL", "int32"});
      expect_error([&] { f.get<float>(e.name); }, {"BOOL", "float32"});
    } else {
      auto v = f.get<std::int64_t>(e.name).to_vector();
      EXPECT_EQ(v, e.i);
      const bool fits32 = std::all_of(e.i.begin(), e.i.end(), [](std::int64_t x) { return x == std::int32_t(x); });
      if (fits32) {
        auto v32 = f.get<std::int32_t>(e.name).to_vector();
        EXPECT_EQ(std::vector<std::int64_t>(v32.begin(), v32.end()), e.i);
      } else {
        expect_error([&] { f.get<std::int32_t>(e.name); },
                     {"torch_tensors.safetensors", e.name, "does not fit in int32"});
      }
      if (dt == "U8")
        EXPECT_EQ(f.get<std::uint8_t>(e.name).to_vector(), std::vector<std::uint8_t>(e.i.begin(), e.i.end()));
      else
        expect_error([&] { f.get<std::uint8_t>(e.name); }, {dt, "uint8"});
      expect_error([&] { f.get<double>(e.name); }, {e.name, dt, "float64"});
    }
  }
  EXPECT_EQ(checked, f.size());
  EXPECT_GE(checked, 10u);
}

TEST(SafetensorsTorch, U8AsBoolNeedsZeroOrOne) {
  const auto f = SafetensorsFile::open(kFixtures / "torch_tensors.safetensors");
  expect_error([&] { f.get<bool>("u8"); }, {"\"u8\"", "element 1 = 255", "not a valid bool"});
}

// ---- round trips ---------------------------------------------------------------------------------

template <class T> void expect_round_trip(const SafetensorsFile& f, const std::string& name, const Tensor<T, Cpu>& t) {
  SCOPED_TRACE(name);
  ASSERT_TRUE(f.has(name));
  auto r = f.get<T>(name);
  EXPECT_EQ(r.shape(), t.shape());
  EXPECT_TRUE(r.is_contiguous());
  auto a = r.to_vector(), b = t.to_vector();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(a[k] == b[k] || (a[k] != a[k] && b[k] != b[k])) << k;
}

TEST(SafetensorsRoundTrip, EveryElementType) {
  TempDir dir("avgrad_st_");
  Generator g(3);
  auto f32 = randn<float>(Shape{3, 4}, g);
  auto f64 = randn<double>(Shape{2, 2, 2}, g);
  f64.set({0, 0, 0}, -0.0);
  f64.set({0, 0, 1}, kNaN);
  f64.set({0, 1, 0}, -kInf);
  f64.set({0, 1, 1}, std::numeric_limits<double>::denorm_min());
  auto i32 = from_vector<std::int32_t>(
      {std::numeric_limits<std::int32_t>::min(), -1, 0, 7, std::numeric_limits<std::int32_t>::max()});
  auto i64 = from_vector<std::int64_t>(
      {std::numeric_limits<std::int64_t>::min(), 3, std::numeric_limits<std::int64_t>::max()}, Shape{3, 1});
  auto b = from_vector<bool>({true, false, false, true, true}, Shape{5});
  auto u8 = from_vector<std::uint8_t>({0, 1, 128, 255}, Shape{2, 2});
  SafetensorsWriter w;
  w.add("layer.0.weight", f32).add("f64", f64).add("i32", i32).add("i64", i64).add("mask", b).add("u8", u8);
  const fs::path p = dir / "all.safetensors";
  w.write(p, {{"avgrad.format_version", "1"}, {"note", "tab\there \"quoted\" \xc3\xa9"}});

  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"f64", "i32", "i64", "layer.0.weight", "mask", "u8"}));
  EXPECT_EQ(f.dtype("layer.0.weight"), "F32");
  EXPECT_EQ(f.dtype("f64"), "F64");
  EXPECT_EQ(f.dtype("i32"), "I32");
  EXPECT_EQ(f.dtype("i64"), "I64");
  EXPECT_EQ(f.dtype("mask"), "BOOL");
  EXPECT_EQ(f.dtype("u8"), "U8");
  EXPECT_EQ(f.metadata().at("format"), "pt");  // added by default
  EXPECT_EQ(f.metadata().at("avgrad.format_version"), "1");
  EXPECT_EQ(f.metadata().at("note"), "tab\there \"quoted\" \xc3\xa9");
  expect_round_trip(f, "layer.0.weight", f32);
  expect_round_trip(f, "f64", f64);
  expect_round_trip(f, "i32", i32);
  expect_round_trip(f, "i64", i64);
  expect_round_trip(f, "mask", b);
  expect_round_trip(f, "u8", u8);
  // widening / narrowing within a kind
  EXPECT_EQ(f.get<double>("layer.0.weight").to_vector()[5], static_cast<double>(f32.to_vector()[5]));
  EXPECT_EQ(f.get<std::int64_t>("i32").to_vector()[0], std::numeric_limits<std::int32_t>::min());
  expect_error([&] { f.get<std::int32_t>("i64"); },
               {"all.safetensors", "\"i64\"", "element 0", "does not fit in int32"});
}

TEST(SafetensorsRoundTrip, CallerFormatKeyWins) {
  SafetensorsWriter w;
  w.add("x", scalar<float>(1.f));
  auto f = SafetensorsFile::from_bytes(w.to_bytes({{"format", "np"}}), "mem");
  EXPECT_EQ(f.metadata().at("format"), "np");
  EXPECT_EQ(f.metadata().size(), 1u);
}

TEST(SafetensorsRoundTrip, NonContiguousEmptyAndRankZero) {
  // a (3,4) tensor read as its transpose (4,3) and as a strided slice with a broadcast dim
  auto base = from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, Shape{3, 4});
  auto t = Tensor<float, Cpu>::from_storage(base.storage(), Shape{4, 3}, Strides{1, 4}, 0);
  auto strided = Tensor<float, Cpu>::from_storage(base.storage(), Shape{2, 3, 2}, Strides{0, 4, 2}, 1);
  ASSERT_FALSE(t.is_contiguous());
  SafetensorsWriter w;
  w.add("t", t)
      .add("strided", strided)
      .add("empty", zeros<double>(Shape{0}))
      .add("empty2", zeros<std::int32_t>(Shape{2, 0, 3}))
      .add("scalar", scalar<double>(-2.5))
      .add("bool_scalar", scalar<bool>(true));
  auto f = SafetensorsFile::from_bytes(w.to_bytes(), "mem");
  EXPECT_EQ(f.get<float>("t").to_vector(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(f.get<float>("strided").to_vector(), (std::vector<float>{1, 3, 5, 7, 9, 11, 1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(f.shape("empty"), (Shape{0}));
  EXPECT_EQ(f.get<double>("empty").numel(), 0);
  EXPECT_EQ(f.shape("empty2"), (Shape{2, 0, 3}));
  EXPECT_EQ(f.get<std::int32_t>("empty2").shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(f.shape("scalar").rank(), 0);
  EXPECT_EQ(f.get<double>("scalar").item(), -2.5);
  EXPECT_EQ(f.get<bool>("bool_scalar").item(), true);
  EXPECT_EQ(f.raw("empty").size(), 0u);
}

TEST(SafetensorsRoundTrip, OnlyMetadataAndNoTensors) {
  SafetensorsWriter w;
  auto bytes = w.to_bytes();
  auto f = SafetensorsFile::from_bytes(bytes, "mem");
  EXPECT_EQ(f.size(), 0u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  auto g = SafetensorsFile::from_bytes(image("{}"), "mem");
  EXPECT_EQ(g.size(), 0u);
  EXPECT_TRUE(g.metadata().empty());
}

TEST(SafetensorsWriter, LayoutPaddingAlignmentAndOrder) {
  SafetensorsWriter w;
  w.add("b_bool", from_vector<bool>({true, false, true}))
      .add("a_f64", from_vector<double>({1, 2}))
      .add("c_i32", from_vector<std::int32_t>({5}))
      .add("d_u8", from_vector<std::uint8_t>({9}))
      .add("e_f32", from_vector<float>({1, 2, 3}));
  const auto bytes = w.to_bytes();
  std::uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= std::uint64_t(bytes[k]) << (8 * k);
  EXPECT_EQ(n % 8, 0u);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"a_f64\":", 0), 0u) << header;
  EXPECT_EQ(header.find("\"b_bool\"") < header.find("\"c_i32\""), true);  // header sorted by name
  const auto f = SafetensorsFile::from_bytes(bytes, "mem");
  // data: larger elements first, each tensor aligned to its element size
  EXPECT_EQ(f.entry("a_f64").begin, 0u);
  EXPECT_EQ(f.entry("c_i32").begin, 16u);
  EXPECT_EQ(f.entry("e_f32").begin, 20u);
  EXPECT_EQ(f.entry("b_bool").begin, 32u);
  EXPECT_EQ(f.entry("d_u8").begin, 35u);
  for (const auto& name : f.names()) {
    const auto& e = f.entry(name);
    EXPECT_EQ(e.begin % detail::stored_info(e.code).itemsize, 0u) << name;
  }
  EXPECT_EQ(bytes.size(), 8 + n + 36);
}

TEST(SafetensorsWriter, RejectsBadNames) {
  SafetensorsWriter w;
  w.add("x", scalar<float>(1));
  expect_error([&] { w.add("x", scalar<float>(2)); }, {"save_safetensors", "\"x\"", "twice"});
  expect_error([&] { w.add("__metadata__", scalar<float>(2)); }, {"reserved"});
  expect_error([&] { w.add("bad\xff", scalar<float>(2)); }, {"UTF-8"});
  expect_error([&] { w.add("undef", Tensor<float, Cpu>()); }, {"\"undef\"", "undefined"});
  expect_error([&] { w.to_bytes({{"k", "\xc0\xaf"}}); }, {"metadata", "UTF-8"});
}

// The committed avgrad_written.safetensors is what torch was shown to read (make_fixtures.py).
// AVGRAD_REGENERATE_FIXTURES=1 rewrites it; otherwise the writer must reproduce it exactly.
TEST(SafetensorsWriter, MatchesCommittedFileReadByTorch) {
  const fs::path p = kFixtures / "avgrad_written.safetensors";
  const auto bytes = avgrad_written().to_bytes(kAvgradMeta);
  if (std::getenv("AVGRAD_REGENERATE_FIXTURES")) avgrad_written().write(p, kAvgradMeta);
  EXPECT_EQ(read_all(p), bytes) << "regenerate with AVGRAD_REGENERATE_FIXTURES=1, then run make_fixtures.py";
  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f.get<float>("w").to_vector(), (std::vector<float>{0, 1.5f, 0.5f, 2, 1, 2.5f}));
  EXPECT_EQ(f.get<std::int64_t>("step").item(), 42);
}

// ---- malformed files -----------------------------------------------------------------------------

TEST(SafetensorsErrors, MissingFileAndDirectory) {
  TempDir dir("avgrad_st_");
  expect_error([&] { SafetensorsFile::open(dir / "nope.safetensors"); },
               {"safetensors", "nope.safetensors", "No such file"});
  expect_error([&] { SafetensorsFile::open(dir.path); }, {dir.path.string(), "not a regular file"});
}

TEST(SafetensorsErrors, TruncatedAtEveryCutPoint) {
  TempDir dir("avgrad_st_");
  const auto full = avgrad_written().to_bytes();
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    const std::vector<std::uint8_t> part(full.begin(), full.begin() + static_cast<long>(cut));
    try {
      SafetensorsFile::from_bytes(part, "cut.safetensors");
      ADD_FAILURE() << "cut at " << cut << " of " << full.size() << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
    }
  }
  // and through a real file at a few cut points: length field, header, data
  for (std::size_t cut : {std::size_t(0), std::size_t(5), std::size_t(8), std::size_t(40), full.size() - 1}) {
    const fs::path p = dir / ("cut" + std::to_string(cut) + ".safetensors");
    write_raw(p, std::vector<std::uint8_t>(full.begin(), full.begin() + static_cast<long>(cut)));
    expect_error([&] { SafetensorsFile::open(p); }, {p.string()});
  }
}

TEST(SafetensorsErrors, HeaderLength) {
  TempDir dir("avgrad_st_");
  const fs::path p = dir / "len.safetensors";
  write_raw(p, image("{}", {}, 1000));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "header length 1000 exceeds the 2 bytes"});
  write_raw(p, image("{}", {}, 200'000'000));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "exceeds the limit"});
  write_raw(p, image("{}", {}, ~std::uint64_t(0) - 1));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "header length"});
  write_raw(p, image(" {}"));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "does not start with '{'"});
  write_raw(p, {1, 2, 3});
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "3 bytes"});
}

TEST(SafetensorsErrors, BadJson) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"a": {"dtype": "F32",)", "unexpected end of input"},
      {R"({"a": 1,})", "expected a string key"},
      {R"({} x)", "trailing"},
      {R"({"a": {"dtype": "F32", "dtype": "F64", "shape": [], "data_offsets": [0, 4]}})", "duplicate key \"dtype\""},
      {R"({"a": {}, "a": {}})", "duplicate key \"a\""},
      {"{\"a\xff\": 1}", "invalid UTF-8"},
      {"{\"a\": \"x\ny\"}", "control character"},
      {R"({"a": "\ud800"})", "surrogate"},
      {R"({"a": "\q"})", "invalid escape"},
      {R"({"a": 99999999999999999999})", "64-bit range"},
      {R"({"a": 01})", "leading zeros"},
      {R"({"a": tru})", "invalid literal"},
      {"{\"a\": " + std::string(10000, '[') + std::string(10000, ']') + "}", "nesting deeper than"},
  };
  for (const auto& c : cases) {  // (no structured bindings: clang 14 cannot capture them)
    SCOPED_TRACE(c.first.substr(0, 80));
    expect_error([&] { SafetensorsFile::from_bytes(image(c.first), "bad.safetensors"); },
                 {"bad.safetensors", "invalid JSON header", c.second});
  }
  // valid JSON numbers that are not sizes
  for (const char* shape : {"[1.5]", "[1e3]"}) {
    SCOPED_TRACE(shape);
    const std::string h = std::string(R"({"a": {"dtype": "F32", "shape": )") + shape + R"(, "data_offsets": [0, 4]}})";
    expect_error([&] { SafetensorsFile::from_bytes(image(h), "bad.safetensors"); },
                 {"bad.safetensors", "shape", "non-integer number", "expected integers"});
  }
}

TEST(SafetensorsErrors, EntryFields) {
  const std::vector<std::uint8_t> data8(8, 0);
  struct Case {
    std::string header;
    std::vector<std::string> fragments;
    std::vector<std::uint8_t> data;
  };
  const std::vector<Case> cases = {
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})",
       {"tensor \"w\"", "data_offsets", "exceeds the data buffer of 8 bytes"},
       data8},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
       {"tensor \"w\"", "holds 8 bytes but shape (3) of F32 needs 3 x 4"},
       data8},
      {R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})",
       {"tensor \"w\"", "field \"dtype\"", "unknown dtype \"F8_E4M3\""},
       data8},
      {R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", {"\"shape\"", "negative extent -2"}, data8},
      {R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", {"\"shape\"", "string"}, data8},
      {R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", {"\"shape\"", "expected an array"}, data8},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", {"begin 8 is after end 0"}, data8},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", {"negative offset"}, data8},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", {"two integers"}, data8},
      {R"({"w": {"dtype": "F32", "shape": [2]}})", {"\"data_offsets\"", "missing"}, data8},
      {R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", {"\"dtype\"", "missing"}, data8},
      {R"({"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", {"\"dtype\"", "expected a string"}, data8},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "extra": 1}})",
       {"\"extra\"", "unknown field"},
       data8},
      {R"({"w": [1]})", {"tensor \"w\" is a array"}, data8},
      {R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", {"overflows"}, data8},
      {R"({"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 8]}})",
       {"tensor \"w\"", "needs"},
       data8},
      {R"({"__metadata__": {"k": 1}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       {"\"__metadata__\" value for \"k\"", "expected a string"},
       data8},
      {R"({"__metadata__": [], "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       {"\"__metadata__\" is a array"},
       data8},
      // overlap, gaps and uncovered trailing bytes
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       {"tensor \"b\"", "overlaps tensor \"a\""},
       data8},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       {"overlaps tensor \"a\""},
       data8},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       {"data bytes [0, 4) belong to no tensor"},
       data8},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
       {"data bytes [4, 8) after the last tensor"},
       data8},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
       {"tensor \"z\"", "overlaps tensor \"a\""},
       data8},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    std::vector<std::string> fragments = c.fragments;
    fragments.push_back("entry.safetensors");
    expect_error([&] { SafetensorsFile::from_bytes(image(c.header, c.data), "entry.safetensors"); }, fragments);
  }
  // zero-sized tensors may sit at the same offset; padding spaces after the JSON are allowed
  auto ok = SafetensorsFile::from_bytes(
      image(
          R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "b": {"dtype": "I8", "shape": [0, 5], "data_offsets": [0, 0]}}   )"),
      "ok");
  EXPECT_EQ(ok.size(), 2u);
}

TEST(SafetensorsErrors, UnknownNameAndRank) {
  auto f = SafetensorsFile::from_bytes(
      image(R"({"big": {"dtype": "U8", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 1]}})", {7}),
      "rank.safetensors");
  expect_error([&] { f.get<std::uint8_t>("nope"); }, {"rank.safetensors", "no tensor named \"nope\"", "\"big\""});
  expect_error([&] { f.get<std::uint8_t>("big"); }, {"rank.safetensors", "rank 9"});
  EXPECT_EQ(f.entry("big").shape.size(), 9u);
  EXPECT_EQ(f.raw("big")[0], 7);
}

TEST(SafetensorsErrors, InvalidBoolByte) {
  auto f = SafetensorsFile::from_bytes(
      image(R"({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})", {1, 2}), "b.st");
  expect_error([&] { f.get<bool>("m"); }, {"b.st", "\"m\"", "element 1 = 2", "not a valid bool"});
}

// ---- JSON ------------------------------------------------------------------------------------------

TEST(Json, StringsAndEscapes) {
  namespace json = detail::json;
  auto v = json::parse(
      R"({"k": "a\"b\\c\/\b\f\n\r\t\u00e9\u4e2d\ud83d\ude00", "n": [-9223372036854775808, 9223372036854775807, 0, -0], "t": [true, false, null]})");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.find("k")->string, "a\"b\\c/\b\f\n\r\t\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80");
  const auto& n = v.find("n")->items;
  EXPECT_EQ(n[0].integer, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(n[1].integer, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(n[3].integer, 0);
  EXPECT_TRUE(v.find("t")->items[0].boolean);
  EXPECT_EQ(v.find("t")->items[2].kind, json::Value::Kind::Null);
  EXPECT_EQ(v.find("missing"), nullptr);
  // write → parse is the identity on strings with every escape class
  std::string s;
  const std::string raw = std::string("q\"\\/\x01\x1f\t\n ") + "\xe2\x82\xac";
  json::write_string(s, raw);
  EXPECT_EQ(json::parse(s).string, raw);
  std::string doc;
  json::write(doc, v);
  std::string doc2;
  json::write(doc2, json::parse(doc));
  EXPECT_EQ(doc, doc2);
}

TEST(Json, RejectsMalformed) {
  namespace json = detail::json;
  for (const char* bad : {"",
                          "{",
                          "[1,]",
                          "[1 2]",
                          "{\"a\" 1}",
                          "\"\\u12\"",
                          "\"\\udc00\"",
                          "\"\\ud800\\u0041\"",
                          "-",
                          "9223372036854775808",
                          "-9223372036854775809",
                          "1.",
                          "1.e5",
                          "1e",
                          "-.5",
                          "01.5",
                          "1e+",
                          "1e999",
                          "[] []",
                          "\"\xed\xa0\x80\"",
                          "\"\xc0\x80\"",
                          "\"\xf4\x90\x80\x80\"",
                          "nul",
                          "{\"a\":1,\"a\":2}"}) {
    SCOPED_TRACE(bad);
    expect_error([&] { json::parse(bad); }, {"json: "});
  }
  expect_error([&] { json::parse(std::string(65, '[') + std::string(65, ']')); }, {"nesting deeper than 64"});
  EXPECT_NO_THROW(json::parse(std::string(64, '[') + std::string(64, ']')));
  expect_error([&] { json::parse("[1,2,3,4]", 4); }, {"more than 4 values"});
}

TEST(Json, NumbersKeepIntegersExactAndReadOthersAsDoubles) {
  namespace json = detail::json;
  const auto v = json::parse("[9007199254740993, -0.25, 1e3, 6.02E-23, 0.97, -0]");
  ASSERT_EQ(v.items.size(), 6u);
  EXPECT_TRUE(v.items[0].is_int());
  EXPECT_EQ(v.items[0].integer, 9007199254740993);  // not representable as a double
  EXPECT_EQ(v.items[1].kind, json::Value::Kind::Number);
  EXPECT_EQ(v.items[1].number, -0.25);
  EXPECT_EQ(v.items[2].as_double(), 1000.0);
  EXPECT_DOUBLE_EQ(v.items[3].number, 6.02e-23);
  EXPECT_EQ(v.items[4].number, 0.97);
  EXPECT_TRUE(v.items[5].is_int());
  std::string out;
  json::write(out, v);
  EXPECT_EQ(json::parse(out).items[4].number, 0.97);  // round trip is exact (%.17g)
}

// ---- atomic replacement --------------------------------------------------------------------------

namespace {
std::vector<fs::path> temp_files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path());
  return out;
}
}  // namespace

TEST(AtomicFile, MissingDirectoryThrowsAndLeavesNothing) {
  TempDir dir("avgrad_st_");
  const fs::path p = dir / "no_such_dir" / "x.safetensors";
  SafetensorsWriter w;
  w.add("x", scalar<float>(1));
  expect_error([&] { w.write(p); }, {"atomic_write", p.string(), "No such file or directory"});
  EXPECT_FALSE(fs::exists(dir / "no_such_dir"));
  EXPECT_TRUE(fs::is_empty(dir.path));
  expect_error([&] { write_file_atomic(dir.path, "x"); }, {"is a directory"});
}

TEST(AtomicFile, ReplacesExistingTargetWhole) {
  TempDir dir("avgrad_st_");
  const fs::path p = dir / "model.safetensors";
  SafetensorsWriter big;
  big.add("w", zeros<double>(Shape{1000}));
  big.write(p);
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  const auto big_size = fs::file_size(p);
  SafetensorsWriter small;
  small.add("v", from_vector<float>({1, 2}));
  small.write(p, {{"k", "v"}});
  EXPECT_LT(fs::file_size(p), big_size);
  EXPECT_EQ(read_all(p), small.to_bytes({{"k", "v"}}));
  EXPECT_EQ(fs::status(p).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_TRUE(temp_files_in(dir.path).empty());
  EXPECT_EQ(SafetensorsFile::open(p).get<float>("v").to_vector(), (std::vector<float>{1, 2}));
}

TEST(AtomicFile, AbandonedWriteKeepsOldContents) {
  TempDir dir("avgrad_st_");
  const fs::path p = dir / "a.bin";
  write_file_atomic(p, "old contents");
  {
    AtomicFile f(p);
    f.write("new, but never committed");
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), dir.path);
    EXPECT_EQ(fs::path(f.temp_path()).filename().string().rfind("a.bin.tmp." + std::to_string(::getpid()) + ".", 0),
              0u);
  }
  EXPECT_EQ(read_all(p), (std::vector<std::uint8_t>{'o', 'l', 'd', ' ', 'c', 'o', 'n', 't', 'e', 'n', 't', 's'}));
  EXPECT_TRUE(temp_files_in(dir.path).empty());
  AtomicFile f(p);
  f.write("x");
  f.commit();
  expect_error([&] { f.write("y"); }, {"a.bin", "after commit"});
}

// A process that dies mid-write (no destructor runs) must leave the old target intact.
TEST(AtomicFile, CrashMidWriteLeavesTargetIntact) {
  TempDir dir("avgrad_st_");
  const fs::path p = dir / "ckpt.safetensors";
  SafetensorsWriter old;
  old.add("w", from_vector<float>({1, 2, 3}));
  old.write(p);
  const auto before = read_all(p);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    AtomicFile f(p);
    const std::vector<std::uint8_t> junk(1 << 16, 0xAB);
    f.write(junk.data(), junk.size());
    ::_exit(0);  // "crash": no commit, no cleanup
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(read_all(p), before);
  EXPECT_NO_THROW(SafetensorsFile::open(p));
  const auto leftovers = temp_files_in(dir.path);
  EXPECT_EQ(leftovers.size(), 1u);  // the crashed writer's temp file, never the target
}
