// Tests of the optional HDF5 component: writer/reader round trips, conversions, row reads, files made
// with the raw HDF5 API, refusal of broken files, and the AudioSet feature layouts.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "avgrad/data/dataset.hpp"
#include "avgrad/data/hdf5.hpp"
#include "data/file_support.hpp"
#include "support/expect_error.hpp"

namespace {

namespace fs = std::filesystem;
using avgrad::Cpu;
using avgrad::Shape;
using avgrad::Tensor;
using avgrad::testing::expect_error;
using avgrad::testing::TempDir;
using namespace avgrad::data;

template <class T> std::vector<T> values(const Tensor<T, Cpu>& t) { return t.to_vector(); }

/// Distinct, non-trivial floats so a misplaced row or element cannot go unnoticed.
Tensor<float, Cpu> ramp(const Shape& s, float scale, float offset) {
  auto t = Tensor<float, Cpu>::empty(s);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] = offset + scale * static_cast<float>(i % 9973);
  return t;
}

std::vector<std::uint8_t> file_bytes(const fs::path& p) { return avgrad::testing::read_all(p); }

// ---------------------------------------------------------------- writer → reader

TEST(Hdf5, RoundTripsEveryElementType) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "all.h5";
  {
    Hdf5Writer w(p);
    w.write("f32", avgrad::from_vector<float>({1.5f, -2.25f, 3e30f, -0.0f, 7, 8}, Shape{2, 3}));
    w.write("f64", avgrad::from_vector<double>({1e-300, -2.5, 3.0}, Shape{3}));
    w.write("i32", avgrad::from_vector<std::int32_t>({-2147483647 - 1, 0, 2147483647, 5}, Shape{2, 2}));
    w.write("i64", avgrad::from_vector<std::int64_t>({std::numeric_limits<std::int64_t>::min(), 42}, Shape{2}));
    w.write("u8", avgrad::from_vector<std::uint8_t>({0, 255, 7}, Shape{3, 1}));
    w.write("b", avgrad::from_vector<bool>({true, false, true, true}, Shape{4}));
    w.write("nested/deeper/x", avgrad::from_vector<float>({9}, Shape{1}));
    w.write("scalar", avgrad::from_vector<double>({6.5}, Shape{}));
    w.write("empty", Tensor<float, Cpu>::empty(Shape{0, 4}));
    w.commit();
  }
  const Hdf5File f = Hdf5File::open(p);
  EXPECT_EQ(f.dtype("f32"), "float32");
  EXPECT_EQ(f.dtype("/f64"), "float64");
  EXPECT_EQ(f.dtype("i32"), "int32");
  EXPECT_EQ(f.dtype("i64"), "int64");
  EXPECT_EQ(f.dtype("u8"), "uint8");
  EXPECT_EQ(f.dtype("b"), "bool");
  EXPECT_EQ(f.shape("f32"), (Shape{2, 3}));
  EXPECT_EQ(f.shape("u8"), (Shape{3, 1}));
  EXPECT_EQ(f.shape("scalar"), Shape{});
  EXPECT_EQ(f.shape("empty"), (Shape{0, 4}));

  EXPECT_EQ(values(f.read<float>("f32")), (std::vector<float>{1.5f, -2.25f, 3e30f, -0.0f, 7, 8}));
  EXPECT_TRUE(std::signbit(f.read<float>("f32").data()[3]));
  EXPECT_EQ(values(f.read<double>("f64")), (std::vector<double>{1e-300, -2.5, 3.0}));
  EXPECT_EQ(values(f.read<std::int32_t>("i32")), (std::vector<std::int32_t>{-2147483647 - 1, 0, 2147483647, 5}));
  EXPECT_EQ(values(f.read<std::int64_t>("i64")),
            (std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 42}));
  EXPECT_EQ(values(f.read<std::uint8_t>("u8")), (std::vector<std::uint8_t>{0, 255, 7}));
  EXPECT_EQ(values(f.read<bool>("b")), (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(f.read<float>("f32").shape(), (Shape{2, 3}));
  EXPECT_EQ(values(f.read<float>("nested/deeper/x")), (std::vector<float>{9}));
  const auto sc = f.read<double>("scalar");
  EXPECT_EQ(sc.shape(), Shape{});
  EXPECT_EQ(sc.item(), 6.5);
  EXPECT_EQ(f.read<float>("empty").shape(), (Shape{0, 4}));
}

TEST(Hdf5, NamesHasAndKinds) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "tree.h5";
  {
    Hdf5Writer w(p);
    w.write("b", avgrad::from_vector<float>({1}, Shape{1}));
    w.write("a", avgrad::from_vector<float>({1}, Shape{1}));
    w.write("g/x", avgrad::from_vector<float>({1}, Shape{1}));
    w.create_group("g/empty");
    w.commit();
  }
  const Hdf5File f = Hdf5File::open(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "g"}));
  EXPECT_EQ(f.names("g"), (std::vector<std::string>{"empty", "x"}));
  EXPECT_EQ(f.names("/g/empty"), std::vector<std::string>{});
  EXPECT_TRUE(f.has("a"));
  EXPECT_TRUE(f.has("/g/x"));
  EXPECT_TRUE(f.has("g//x/"));
  EXPECT_TRUE(f.has("/"));
  EXPECT_FALSE(f.has("c"));
  EXPECT_FALSE(f.has("nope/x"));
  EXPECT_FALSE(f.has("a/x"));  // through a dataset
  EXPECT_TRUE(f.is_group("g"));
  EXPECT_FALSE(f.is_group("a"));
  EXPECT_TRUE(f.is_dataset("g/x"));
  EXPECT_FALSE(f.is_dataset("missing"));
  expect_error([&] { f.names("a"); }, {p.string(), "'/a' is not a group"});
  expect_error([&] { f.names("nope"); }, {p.string(), "no group '/nope'"});
  expect_error([&] { f.read<float>("missing"); }, {p.string(), "no dataset '/missing'"});
  expect_error([&] { f.read<float>("g"); }, {p.string(), "'/g' is a group, not a dataset"});
  expect_error([&] { f.shape("g/nope"); }, {"Hdf5File::shape", "no dataset '/g/nope'"});
  f.check_shape("a", Shape{-1});
  expect_error([&] { f.check_shape("a", Shape{2}); }, {p.string(), "'/a' has shape (1), expected (2)"});
  expect_error([&] { f.read<float>("a", Shape{-1, 3}); }, {"'/a' has shape (1), expected (*,3)"});
}

TEST(Hdf5, WritesNonContiguousTensorsInLogicalOrder) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "t.h5";
  // A transposed view: element (i, j) of the view is element (j, i) of the storage.
  auto base = avgrad::from_vector<float>({1, 2, 3, 4, 5, 6}, Shape{2, 3});
  auto view = Tensor<float, Cpu>::from_storage(base.storage(), Shape{3, 2}, Shape{1, 3}, 0);
  ASSERT_FALSE(view.is_contiguous());
  {
    Hdf5Writer w(p);
    w.write("t", view);
    w.commit();
  }
  const auto back = Hdf5File::open(p).read<float>("t");
  EXPECT_EQ(back.shape(), (Shape{3, 2}));
  EXPECT_EQ(values(back), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Hdf5, ReadRowsReadsAHyperslabOfTheFirstDimension) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "rows.h5";
  const auto x = ramp(Shape{7, 3, 2}, 0.5f, -3.0f);
  {
    Hdf5Writer w(p);
    w.write("x", x);
    w.write("chunked", x, {.chunk_rows = 2, .deflate = 4});
    w.write("s", avgrad::from_vector<float>({1}, Shape{}));
    w.commit();
  }
  const Hdf5File f = Hdf5File::open(p);
  for (const char* name : {"x", "chunked"}) {
    SCOPED_TRACE(name);
    const auto r = f.read_rows<float>(name, 2, 3);
    EXPECT_EQ(r.shape(), (Shape{3, 3, 2}));
    EXPECT_EQ(values(r), std::vector<float>(x.data() + 2 * 6, x.data() + 5 * 6));
    const auto d = f.read_rows<double>(name, 6, 1);
    EXPECT_EQ(d.shape(), (Shape{1, 3, 2}));
    for (int k = 0; k < 6; ++k) EXPECT_EQ(d.data()[k], static_cast<double>(x.data()[36 + k]));
    EXPECT_EQ(f.read_rows<float>(name, 7, 0).shape(), (Shape{0, 3, 2}));
    EXPECT_EQ(values(f.read_rows<float>(name, 0, 7)), values(x));
    expect_error([&] { f.read_rows<float>(name, 5, 3); }, {p.string(), name, "rows [5, 5 + 3) are outside its 7 rows"});
    expect_error([&] { f.read_rows<float>(name, -1, 1); }, {"outside its 7 rows"});
    expect_error([&] { f.read_rows<float>(name, 8, 0); }, {"outside its 7 rows"});
    expect_error([&] { f.read_rows<float>(name, 1, std::numeric_limits<std::int64_t>::max()); },
                 {"outside its 7 rows"});
  }
  expect_error([&] { f.read_rows<float>("s", 0, 1); }, {"'/s'", "is a scalar"});
}

TEST(Hdf5, ConvertsNumericTypesOnlyWhereValuesSurvive) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "conv.h5";
  {
    Hdf5Writer w(p);
    w.write("f64", avgrad::from_vector<double>({0.1, -2.0, 1e-40}, Shape{3}));
    w.write("f64_big", avgrad::from_vector<double>({1.0, 1e300}, Shape{2}));
    w.write("f64_special", avgrad::from_vector<double>({std::nan(""), -INFINITY, INFINITY}, Shape{3}));
    w.write("f64_int", avgrad::from_vector<double>({3.0, -4.0, 255.0}, Shape{3}));
    w.write("f64_frac", avgrad::from_vector<double>({3.0, 2.5}, Shape{2, 1}));
    w.write("i64", avgrad::from_vector<std::int64_t>({1, -7, (std::int64_t(1) << 40)}, Shape{3}));
    w.write("i64_small", avgrad::from_vector<std::int64_t>({0, 1, -5}, Shape{3}));
    w.write("i32_01", avgrad::from_vector<std::int32_t>({0, 1, 1}, Shape{3}));
    w.write("i32_2", avgrad::from_vector<std::int32_t>({0, 1, 2}, Shape{3}));
    w.write("u8", avgrad::from_vector<std::uint8_t>({200, 3}, Shape{2}));
    w.write("b", avgrad::from_vector<bool>({true, false}, Shape{2}));
    w.commit();
  }
  const Hdf5File f = Hdf5File::open(p);
  // float64 → float32 rounds (documented); the values are the float casts.
  EXPECT_EQ(values(f.read<float>("f64")), (std::vector<float>{0.1f, -2.0f, static_cast<float>(1e-40)}));
  expect_error([&] { f.read<float>("f64_big"); },
               {p.string(), "'/f64_big'", "value 1e+300 at row 1", "outside the float32 range", "float64"});
  const auto sp = values(f.read<float>("f64_special"));
  EXPECT_TRUE(std::isnan(sp[0]));
  EXPECT_EQ(sp[1], -INFINITY);
  EXPECT_EQ(sp[2], INFINITY);
  EXPECT_EQ(values(f.read<std::int32_t>("f64_int")), (std::vector<std::int32_t>{3, -4, 255}));
  expect_error([&] { f.read<std::uint8_t>("f64_int"); }, {"value -4 at row 1", "outside the uint8 range"});
  expect_error([&] { f.read<std::int64_t>("f64_frac"); }, {"'/f64_frac'", "value 2.5 at row 1", "is not an integer"});
  expect_error([&] { f.read<std::int32_t>("f64_special"); }, {"at row 0", "is not an integer"});
  expect_error([&] { f.read<std::int32_t>("i64"); }, {"value 1099511627776 at row 2", "outside the int32 range"});
  EXPECT_EQ(values(f.read<double>("i64")), (std::vector<double>{1, -7, 1099511627776.0}));
  EXPECT_EQ(values(f.read<float>("i64_small")), (std::vector<float>{0, 1, -5}));
  expect_error([&] { f.read<std::uint8_t>("i64_small"); }, {"value -5 at row 2", "outside the uint8 range"});
  EXPECT_EQ(values(f.read<bool>("i32_01")), (std::vector<bool>{false, true, true}));
  expect_error([&] { f.read<bool>("i32_2"); }, {"'/i32_2'", "value 2 at row 2", "is not 0 or 1"});
  expect_error([&] { f.read<bool>("f64"); }, {"value 0.1 at row 0", "is not 0 or 1"});
  EXPECT_EQ(values(f.read<std::int32_t>("u8")), (std::vector<std::int32_t>{200, 3}));
  EXPECT_EQ(values(f.read<float>("b")), (std::vector<float>{1, 0}));
  EXPECT_EQ(values(f.read<std::int64_t>("b")), (std::vector<std::int64_t>{1, 0}));
}

// ---------------------------------------------------------------- interop with the raw C API

/// A file as h5py/NumPy users produce it, made without Hdf5Writer: big-endian int16 chunked with
/// gzip, a float32 dataset in a group, h5py's bool enum, a uint64, a string and a compound.
void write_raw_api_file(const fs::path& p) {
  const hid_t file = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  auto put = [&](const char* name, hid_t ftype, hid_t mtype, std::vector<hsize_t> dims, const void* data,
                 hid_t dcpl = H5P_DEFAULT) {
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hid_t d = H5Dcreate2(file, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    ASSERT_GE(d, 0) << name;
    ASSERT_GE(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0) << name;
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
  };
  std::vector<std::int16_t> i16(10 * 3);
  for (std::size_t i = 0; i < i16.size(); ++i) i16[i] = static_cast<std::int16_t>(int(i) * 1000 - 15000);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const hsize_t chunk[2] = {4, 3};
  H5Pset_chunk(dcpl, 2, chunk);
  H5Pset_deflate(dcpl, 6);
  put("be_i16", H5T_STD_I16BE, H5T_NATIVE_INT16, {10, 3}, i16.data(), dcpl);
  H5Pclose(dcpl);
  const std::vector<float> f32{0.25f, -1.5f, 3.75f, 1e-3f};
  put("grp/f32", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, {2, 2}, f32.data());
  const hid_t boolean = H5Tenum_create(H5T_NATIVE_INT8);
  const std::int8_t no = 0, yes = 1;
  H5Tenum_insert(boolean, "FALSE", &no);
  H5Tenum_insert(boolean, "TRUE", &yes);
  const std::vector<std::int8_t> bits{1, 0, 0, 1, 1};
  put("mask", boolean, boolean, {5}, bits.data());
  H5Tclose(boolean);
  const std::vector<std::uint64_t> u64{1, std::numeric_limits<std::uint64_t>::max()};
  put("u64", H5T_STD_U64LE, H5T_NATIVE_UINT64, {2}, u64.data());
  const hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, 4);
  put("text", str, str, {2}, "abcdefgh");
  H5Tclose(str);
  const hid_t comp = H5Tcreate(H5T_COMPOUND, 8);
  H5Tinsert(comp, "a", 0, H5T_NATIVE_FLOAT);
  H5Tinsert(comp, "b", 4, H5T_NATIVE_FLOAT);
  const std::vector<float> pairs{1, 2, 3, 4};
  put("pairs", comp, comp, {2}, pairs.data());
  H5Tclose(comp);
  H5Lcreate_soft("/does/not/exist", file, "dangling", H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(file);
}

TEST(Hdf5, ReadsFilesMadeWithTheRawApi) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "raw.h5";
  write_raw_api_file(p);
  const Hdf5File f = Hdf5File::open(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"be_i16", "dangling", "grp", "mask", "pairs", "text", "u64"}));
  EXPECT_EQ(f.dtype("be_i16"), "int16");
  EXPECT_EQ(f.dtype("grp/f32"), "float32");
  EXPECT_EQ(f.dtype("mask"), "bool");
  EXPECT_EQ(f.dtype("u64"), "uint64");
  EXPECT_EQ(f.dtype("text"), "string");
  EXPECT_EQ(f.dtype("pairs"), "compound");
  EXPECT_FALSE(f.has("dangling"));

  const auto all = f.read<std::int32_t>("be_i16");
  ASSERT_EQ(all.shape(), (Shape{10, 3}));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(all.data()[i], i * 1000 - 15000);
  // Rows 3..8 straddle three gzip chunks of 4 rows.
  const auto rows = f.read_rows<float>("be_i16", 3, 5);
  ASSERT_EQ(rows.shape(), (Shape{5, 3}));
  for (int i = 0; i < 15; ++i) EXPECT_EQ(rows.data()[i], static_cast<float>((i + 9) * 1000 - 15000));
  EXPECT_EQ(values(f.read<float>("/grp/f32")), (std::vector<float>{0.25f, -1.5f, 3.75f, 1e-3f}));
  EXPECT_EQ(values(f.read<bool>("mask")), (std::vector<bool>{true, false, false, true, true}));
  EXPECT_EQ(values(f.read_rows<std::uint8_t>("mask", 3, 2)), (std::vector<std::uint8_t>{1, 1}));
  expect_error([&] { f.read<std::int64_t>("u64"); },
               {"value 18446744073709551615 at row 1", "outside the int64 range"});
  EXPECT_EQ(f.read<double>("u64").data()[0], 1.0);
  expect_error([&] { f.read<float>("text"); }, {p.string(), "'/text'", "element type string"});
  expect_error([&] { f.read<float>("pairs"); }, {p.string(), "'/pairs'", "element type compound"});
  expect_error([&] { f.read<float>("dangling"); }, {"no dataset '/dangling'"});
}

TEST(Hdf5, WriterOutputReadsBackThroughTheRawApi) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "w.h5";
  {
    Hdf5Writer w(p);
    w.write("g/x", avgrad::from_vector<std::int64_t>({5, -6, 7}, Shape{3}));
    w.write("flags", avgrad::from_vector<bool>({false, true}, Shape{2}));
    w.commit();
  }
  const hid_t file = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t d = H5Dopen2(file, "/g/x", H5P_DEFAULT);
  ASSERT_GE(d, 0);
  std::int64_t got[3] = {};
  ASSERT_GE(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, got), 0);
  EXPECT_EQ(got[0], 5);
  EXPECT_EQ(got[1], -6);
  EXPECT_EQ(got[2], 7);
  const hid_t t = H5Dget_type(d);
  EXPECT_EQ(H5Tget_class(t), H5T_INTEGER);
  EXPECT_EQ(H5Tget_order(t), H5T_ORDER_LE);
  H5Tclose(t);
  H5Dclose(d);
  // h5py decides "numpy bool" from exactly this enum layout.
  const hid_t fl = H5Dopen2(file, "/flags", H5P_DEFAULT);
  const hid_t ft = H5Dget_type(fl);
  EXPECT_EQ(H5Tget_class(ft), H5T_ENUM);
  EXPECT_EQ(H5Tget_size(ft), 1u);
  char name[8] = {};
  const std::int8_t one = 1;
  ASSERT_GE(H5Tenum_nameof(ft, &one, name, sizeof name), 0);
  EXPECT_STREQ(name, "TRUE");
  H5Tclose(ft);
  H5Dclose(fl);
  H5Fclose(file);
}

// ---------------------------------------------------------------- atomic writes

std::vector<fs::path> listing(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Hdf5Writer, IsAtomic) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "a.h5";
  {
    Hdf5Writer w(p);
    w.write("x", avgrad::from_vector<float>({1, 2}, Shape{2}));
    // Nothing at the target until commit; the bytes live in one temp file beside it.
    EXPECT_FALSE(fs::exists(p));
    EXPECT_EQ(listing(dir.path).size(), 1u);
    w.commit();
  }
  EXPECT_EQ(listing(dir.path), std::vector<fs::path>{"a.h5"});
  const auto before = file_bytes(p);
  {
    Hdf5Writer w(p);
    w.write("x", avgrad::from_vector<float>({3, 4, 5}, Shape{3}));
    // destroyed without commit: the old file stays, the temp file goes
  }
  EXPECT_EQ(file_bytes(p), before);
  EXPECT_EQ(listing(dir.path), std::vector<fs::path>{"a.h5"});
  try {
    Hdf5Writer w(p);
    w.write("y", avgrad::from_vector<float>({3}, Shape{1}));
    w.write("y", avgrad::from_vector<float>({4}, Shape{1}));
    w.commit();
    ADD_FAILURE() << "duplicate dataset accepted";
  } catch (const avgrad::Error& e) {
    EXPECT_NE(std::string(e.what()).find(p.string() + ": dataset '/y': cannot create the dataset"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(file_bytes(p), before);
  EXPECT_EQ(listing(dir.path), std::vector<fs::path>{"a.h5"});
  {
    Hdf5Writer w(p);
    w.write("x", avgrad::from_vector<float>({3, 4, 5}, Shape{3}));
    w.commit();
    expect_error([&] { w.write("z", avgrad::from_vector<float>({1}, Shape{1})); }, {"already committed"});
    expect_error([&] { w.commit(); }, {"commit after commit"});
  }
  EXPECT_EQ(values(Hdf5File::open(p).read<float>("x")), (std::vector<float>{3, 4, 5}));
}

TEST(Hdf5Writer, RejectsBadArguments) {
  TempDir dir("hdf5_");
  expect_error([&] { Hdf5Writer w(dir / "missing_dir" / "x.h5"); }, {"missing_dir", "cannot create a temporary file"});
  expect_error([&] { Hdf5Writer w(dir.path); }, {dir.path.string(), "is a directory"});
  Hdf5Writer w(dir / "x.h5");
  const auto t = avgrad::from_vector<float>({1, 2}, Shape{2});
  expect_error([&] { w.write("", t); }, {"empty dataset name"});
  expect_error([&] { w.write("u", Tensor<float, Cpu>()); }, {"'/u'", "undefined"});
  expect_error([&] { w.write("c", t, {.chunk_rows = 0, .deflate = 3}); }, {"deflate needs chunk_rows > 0"});
  expect_error([&] { w.write("c", t, {.chunk_rows = 1, .deflate = 10}); }, {"deflate level 10"});
  expect_error([&] { w.write("c", avgrad::from_vector<float>({1}, Shape{}), {.chunk_rows = 1}); },
               {"a scalar cannot be chunked"});
  w.create_group("g");
  expect_error([&] { w.create_group("g"); }, {"group '/g': cannot create the group"});
}

// ---------------------------------------------------------------- broken files

TEST(Hdf5File, RefusesFilesThatAreNotReadableHdf5) {
  TempDir dir("hdf5_");
  const fs::path good = dir / "good.h5";
  {
    Hdf5Writer w(good);
    w.write("x", ramp(Shape{64, 32}, 1.0f, 0.0f));
    w.commit();
  }
  const auto bytes = file_bytes(good);
  ASSERT_GT(bytes.size(), 4096u);

  const fs::path random = dir / "random.h5";
  std::mt19937 rng(7);
  std::vector<std::uint8_t> noise(4096);
  for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
  avgrad::testing::write_raw(random, noise);
  expect_error([&] { Hdf5File::open(random); }, {"Hdf5File::open", random.string(), "not an HDF5 file"});

  // The superblock survives, the data does not: HDF5's end-of-file check refuses the file.
  for (const std::size_t keep : {bytes.size() / 2, bytes.size() - 1, std::size_t(1000), std::size_t(100)}) {
    SCOPED_TRACE(keep);
    const fs::path cut = dir / "cut.h5";
    avgrad::testing::write_raw(cut, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + long(keep)));
    expect_error([&] { Hdf5File::open(cut).read<float>("x"); }, {cut.string()});
  }
  const fs::path half = dir / "half.h5";
  avgrad::testing::write_raw(half, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + long(bytes.size() / 2)));
  expect_error([&] { Hdf5File::open(half); }, {half.string(), "cannot open", "truncated file"});

  const fs::path empty = dir / "empty.h5";
  avgrad::testing::write_raw(empty, {});
  expect_error([&] { Hdf5File::open(empty); }, {empty.string(), "empty file"});
  expect_error([&] { Hdf5File::open(dir / "missing.h5"); }, {"missing.h5", "cannot open", "No such file"});
  expect_error([&] { Hdf5File::open(dir.path); }, {dir.path.string(), "not a regular file"});
  // A text file that happens to be long enough for a signature search.
  const fs::path text = dir / "notes.h5";
  std::ofstream(text) << std::string(5000, 'x');
  expect_error([&] { Hdf5File::open(text); }, {text.string(), "not an HDF5 file"});
}

TEST(Hdf5File, SurvivesCorruptedBytes) {
  // Overwrite spans of a valid file with noise: every outcome must be a value or an avgrad::Error.
  // The writer's output is byte-for-byte reproducible, so the trials are the same on every run.
  TempDir dir("hdf5_");
  const fs::path good = dir / "good.h5";
  {
    Hdf5Writer w(good);
    w.write("a", ramp(Shape{16, 8}, 1.0f, 0.0f));
    w.write("b", avgrad::from_vector<std::int32_t>({1, 2, 3}, Shape{3}));
    w.write("c", ramp(Shape{16, 8}, 2.0f, 1.0f), {.chunk_rows = 4});
    w.commit();
  }
  const auto bytes = file_bytes(good);
  std::mt19937 rng(11);
  int refused = 0;
  for (int trial = 0; trial < 60; ++trial) {
    auto bad = bytes;
    const std::size_t at = rng() % bytes.size(), len = 1 + rng() % 16;
    for (std::size_t k = at; k < std::min(bad.size(), at + len); ++k) bad[k] = static_cast<std::uint8_t>(rng());
    const fs::path p = dir / "bad.h5";
    avgrad::testing::write_raw(p, bad);
    try {
      const Hdf5File f = Hdf5File::open(p);
      for (const auto& n : f.names()) (void)n;
      (void)f.read<float>("a");
      (void)f.read<std::int32_t>("b");
      (void)f.read_rows<double>("c", 3, 6);
    } catch (const avgrad::Error& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(refused, 0);
}

TEST(Hdf5File, RefusesAChunkIndexThatDisagreesWithTheChunkSize) {
  // HDF5 1.10 would copy a whole chunk out of the shorter span the index records; the reader checks
  // the recorded size of every chunk a row read touches.
  TempDir dir("hdf5_");
  const fs::path p = dir / "chunks.h5";
  {
    Hdf5Writer w(p);
    w.write("c", ramp(Shape{8, 4}, 1.0f, 0.0f), {.chunk_rows = 2});
    w.commit();
  }
  haddr_t addr = 0;
  hsize_t size = 0;
  {
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/c", H5P_DEFAULT);
    const hsize_t coord[2] = {4, 0};
    unsigned mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(d, coord, &mask, &addr, &size), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_EQ(size, 2u * 4u * sizeof(float));
  // Version-1 B-tree record of a rank-2 chunk: size (4 bytes), filter mask (4), three 8-byte
  // offsets, then the chunk's address (8). Find the address and shrink the size before it.
  auto bytes = file_bytes(p);
  std::vector<std::uint8_t> le(8);
  for (int k = 0; k < 8; ++k) le[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(addr >> (8 * k));
  const auto at = std::search(bytes.begin() + 32, bytes.end(), le.begin(), le.end());
  ASSERT_NE(at, bytes.end());
  const auto key = static_cast<std::size_t>(at - bytes.begin()) - 8 - 3 * 8;
  ASSERT_EQ(bytes[key], size);
  bytes[key] = 8;
  avgrad::testing::write_raw(p, bytes);
  const Hdf5File f = Hdf5File::open(p);
  const auto all = values(ramp(Shape{8, 4}, 1.0f, 0.0f));
  EXPECT_EQ(values(f.read_rows<float>("c", 0, 4)), std::vector<float>(all.begin(), all.begin() + 16));
  expect_error([&] { f.read_rows<float>("c", 5, 1); },
               {p.string(), "'/c'", "the chunk at row 4 records 8 bytes", "expected 32 bytes", "corrupt chunk index"});
}

TEST(Hdf5File, RefusesReadsLargerThanMemory) {
  // A dataset whose extent (2^40 x 1024 floats) no machine can hold; its chunks were never written,
  // so row reads return the fill value, a whole read must throw instead of exhausting memory.
  TempDir dir("hdf5_");
  const fs::path p = dir / "huge.h5";
  {
    const hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[2] = {hsize_t(1) << 40, 1024}, chunk[2] = {1, 1024};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    const hid_t d = H5Dcreate2(f, "big", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(f);
  }
  const Hdf5File f = Hdf5File::open(p);
  EXPECT_EQ(f.shape("big"), (Shape{std::int64_t(1) << 40, 1024}));
  const auto row = f.read_rows<float>("big", 12345, 2);
  EXPECT_EQ(row.shape(), (Shape{2, 1024}));
  EXPECT_EQ(values(row), std::vector<float>(2048, 0.0f));
  expect_error([&] { f.read<float>("big"); }, {p.string(), "'/big'", "more than this machine's"});
}

// ---------------------------------------------------------------- AudioSet features

static_assert(CollatingDataset<AudioSetFeatures>, "the loader takes AudioSetFeatures and its batches directly");
static_assert(std::same_as<batch_t<AudioSetFeatures>, AudioSetBatch>);

constexpr std::int64_t kA = AudioSetFeatures::kAudioFrames, kF = AudioSetFeatures::kMelBins,
                       kV = AudioSetFeatures::kVideoFrames, kD = AudioSetFeatures::kVideoDim,
                       kK = AudioSetFeatures::kClasses;

/// n rows of distinct features, sample j of the whole file marked by offset j.
struct Block {
  Tensor<float, Cpu> a, v, l;
};
Block block(std::int64_t n, std::int64_t first) {
  Block b{Tensor<float, Cpu>::empty(Shape{n, kA, kF}), Tensor<float, Cpu>::empty(Shape{n, kV, kD}),
          Tensor<float, Cpu>::empty(Shape{n, kK})};
  for (std::int64_t r = 0; r < n; ++r) {
    const float j = static_cast<float>(first + r);
    for (std::int64_t k = 0; k < kA * kF; ++k)
      b.a.data()[r * kA * kF + k] = j * 1000.0f + static_cast<float>(k % 977) * 0.5f;
    for (std::int64_t k = 0; k < kV * kD; ++k) b.v.data()[r * kV * kD + k] = -j * 100.0f - static_cast<float>(k % 613);
    for (std::int64_t k = 0; k < kK; ++k) b.l.data()[r * kK + k] = ((k + first + r) % 5 == 0) ? 1.0f : 0.0f;
  }
  return b;
}

void expect_sample(const AudioSetSample& s, const Block& b, std::int64_t r) {
  ASSERT_EQ(s.audio.shape(), (Shape{kA, kF}));
  ASSERT_EQ(s.video.shape(), (Shape{kV, kD}));
  ASSERT_EQ(s.labels.shape(), (Shape{kK}));
  EXPECT_TRUE(std::equal(s.audio.data(), s.audio.data() + kA * kF, b.a.data() + r * kA * kF));
  EXPECT_TRUE(std::equal(s.video.data(), s.video.data() + kV * kD, b.v.data() + r * kV * kD));
  EXPECT_TRUE(std::equal(s.labels.data(), s.labels.data() + kK, b.l.data() + r * kK));
}

TEST(AudioSetFeatures, FlatLayout) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "flat.h5";
  const Block b = block(3, 0);
  {
    Hdf5Writer w(p);
    w.write("feat_a", b.a);
    w.write("feat_v", b.v, {.chunk_rows = 1});
    // Integer multi-hot labels, as some exports store them.
    auto li = Tensor<std::uint8_t, Cpu>::empty(Shape{3, kK});
    for (std::int64_t k = 0; k < 3 * kK; ++k) li.data()[k] = static_cast<std::uint8_t>(b.l.data()[k]);
    w.write("labels", li);
    w.write("meta/ids", avgrad::from_vector<std::int32_t>({7, 8, 9}, Shape{3}));  // ignored
    w.commit();
  }
  const auto ds = AudioSetFeatures::open(p);
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.layout(), AudioSetFeatures::Layout::flat);
  EXPECT_EQ(ds.num_batches(), 1);
  for (std::int64_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    expect_sample(ds.get(i), b, i);
  }
  expect_error([&] { ds.get(3); }, {p.string(), "index 3 outside [0, 3)"});
  expect_error([&] { ds.get(-1); }, {"index -1"});

  std::vector<AudioSetSample> samples{ds.get(2), ds.get(0)};
  const auto batch = AudioSetFeatures::collate(std::move(samples));
  EXPECT_EQ(batch.audio.shape(), (Shape{2, kA, kF}));
  EXPECT_EQ(batch.video.shape(), (Shape{2, kV, kD}));
  EXPECT_EQ(batch.labels.shape(), (Shape{2, kK}));
  EXPECT_TRUE(std::equal(batch.audio.data(), batch.audio.data() + kA * kF, b.a.data() + 2 * kA * kF));
  EXPECT_TRUE(std::equal(batch.audio.data() + kA * kF, batch.audio.data() + 2 * kA * kF, b.a.data()));
  EXPECT_TRUE(std::equal(batch.video.data() + kV * kD, batch.video.data() + 2 * kV * kD, b.v.data()));
  EXPECT_TRUE(std::equal(batch.labels.data(), batch.labels.data() + kK, b.l.data() + 2 * kK));
}

TEST(AudioSetFeatures, PreBatchedGroupsInNumericKeyOrder) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "batched.h5";
  // 12 groups so that name order (e_0, e_1, e_10, e_11, e_2, ...) and key order differ; sizes vary,
  // one group is empty.
  const std::vector<std::int64_t> sizes{2, 1, 0, 1, 1, 1, 1, 1, 1, 1, 2, 1};
  std::vector<Block> blocks;
  std::int64_t total = 0;
  {
    Hdf5Writer w(p);
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      blocks.push_back(block(sizes[k], total));
      const std::string g = "e_" + std::to_string(k);
      w.write(g + "/feat_a", blocks.back().a);
      w.write(g + "/feat_v", blocks.back().v);
      w.write(g + "/labels", blocks.back().l);
      total += sizes[k];
    }
    w.write("info", avgrad::from_vector<std::int32_t>({1}, Shape{1}));  // not an e_<i> key: ignored
    w.commit();
  }
  const auto ds = AudioSetFeatures::open(p);
  EXPECT_EQ(ds.layout(), AudioSetFeatures::Layout::batched);
  EXPECT_EQ(ds.num_batches(), 12);
  ASSERT_EQ(ds.size(), total);
  std::int64_t i = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k)
    for (std::int64_t r = 0; r < sizes[k]; ++r, ++i) {
      SCOPED_TRACE(i);
      expect_sample(ds.get(i), blocks[k], r);
    }

  // Copies share the file; get() from several threads gives the same samples as one thread.
  const AudioSetFeatures copy = ds;
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep)
        for (std::int64_t j = t; j < total; j += 2) {
          const auto a = copy.get(j), b = ds.get(j);
          if (!std::equal(a.video.data(), a.video.data() + kV * kD, b.video.data()) ||
              a.audio.data()[123] != static_cast<float>(j) * 1000.0f + 61.5f)
            ++mismatches[static_cast<std::size_t>(t)];
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0, 0, 0}));
}

/// Writes a flat file with the given three tensors (any of them may be replaced).
template <class L = float>
void write_flat(const fs::path& p, const Tensor<float, Cpu>& a, const Tensor<float, Cpu>& v, const Tensor<L, Cpu>& l) {
  Hdf5Writer w(p);
  w.write("feat_a", a);
  w.write("feat_v", v);
  w.write("labels", l);
  w.commit();
}

TEST(AudioSetFeatures, RejectsWrongShapesAndLayouts) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "bad.h5";
  const Block b = block(3, 0);
  write_flat(p, Tensor<float, Cpu>::empty(Shape{3, 400, 63}), b.v, b.l);
  expect_error([&] { AudioSetFeatures::open(p); },
               {"AudioSetFeatures::open", p.string(), "'/feat_a' has shape (3,400,63), expected (N,400,64)"});
  write_flat(p, b.a, Tensor<float, Cpu>::empty(Shape{3, 2048, 10}), b.l);
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/feat_v' has shape (3,2048,10), expected (N,10,2048)"});
  write_flat(p, b.a, b.v, Tensor<float, Cpu>::empty(Shape{3, 527, 1}));
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/labels' has shape (3,527,1), expected (N,527)"});
  write_flat(p, b.a, block(2, 0).v, b.l);
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/feat_v' has 2 rows but '/feat_a' has 3"});
  write_flat(p, b.a, b.v, Tensor<std::int32_t, Cpu>::empty(Shape{2, 527}));
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/labels' has 2 rows but '/feat_a' has 3"});
  {
    Hdf5Writer w(p);
    w.write("feat_a", Tensor<std::int32_t, Cpu>::empty(Shape{1, 400, 64}));
    w.write("feat_v", block(1, 0).v);
    w.write("labels", block(1, 0).l);
    w.commit();
  }
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/feat_a' has element type int32, expected float32 or float64"});
  {
    Hdf5Writer w(p);
    w.write("feat_a", b.a);
    w.write("feat_v", b.v);
    w.commit();
  }
  expect_error([&] { AudioSetFeatures::open(p); }, {p.string(), "missing dataset '/labels'"});
  {
    Hdf5Writer w(p);
    w.write("something", b.l);
    w.commit();
  }
  expect_error([&] { AudioSetFeatures::open(p); }, {p.string(), "no AudioSet features"});
  const Block one = block(1, 0);
  auto batched = [&](const std::vector<std::string>& groups, bool also_flat) {
    Hdf5Writer w(p);
    for (const auto& g : groups) {
      w.write(g + "/feat_a", one.a);
      w.write(g + "/feat_v", one.v);
      w.write(g + "/labels", one.l);
    }
    if (also_flat) w.write("labels", one.l);
    w.commit();
  };
  batched({"e_0", "e_2"}, false);
  expect_error([&] { AudioSetFeatures::open(p); }, {p.string(), "pre-batched key e_1 is missing"});
  batched({"e_1"}, false);
  expect_error([&] { AudioSetFeatures::open(p); }, {"pre-batched key e_0 is missing"});
  batched({"e_0"}, true);
  expect_error([&] { AudioSetFeatures::open(p); }, {"has both root datasets"});
  {
    Hdf5Writer w(p);
    w.write("e_0/feat_a", one.a);
    w.write("e_0/feat_v", one.v);
    w.write("e_0/labels", one.l);
    w.write("e_1", one.a);  // a batch stored as a bare dataset: not a supported layout
    w.commit();
  }
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/e_1' is a dataset", "needs a group e_<i>"});
  {
    Hdf5Writer w(p);
    w.write("e_0/feat_a", one.a);
    w.write("e_0/feat_v", block(1, 0).v);
    w.write("e_0/labels", Tensor<float, Cpu>::empty(Shape{1, 526}));
    w.commit();
  }
  expect_error([&] { AudioSetFeatures::open(p); }, {"'/e_0/labels' has shape (1,526), expected (N,527)"});
  expect_error([&] { AudioSetFeatures::collate({}); }, {"AudioSetFeatures::collate", "empty batch"});
  std::vector<AudioSetSample> wrong(1);
  wrong[0] = {Tensor<float, Cpu>::empty(Shape{400, 64}), Tensor<float, Cpu>::empty(Shape{10, 2047}),
              Tensor<float, Cpu>::empty(Shape{527})};
  expect_error([&] { AudioSetFeatures::collate(std::move(wrong)); },
               {"sample 0: video has shape (10,2047), expected (10,2048)"});
}

TEST(AudioSetFeatures, RejectsNonFiniteFeaturesAndNonBinaryLabelsOnRead) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "values.h5";
  Block b = block(3, 0);
  b.v.data()[2 * kV * kD + 17] = std::nanf("");
  b.a.data()[1 * kA * kF + 5] = INFINITY;
  b.l.data()[0 * kK + 9] = 0.5f;
  write_flat(p, b.a, b.v, b.l);
  const auto ds = AudioSetFeatures::open(p);  // values are checked on read, not on open
  expect_error([&] { ds.get(2); }, {p.string(), "dataset '/feat_v'", "row 2", "NaN at element 17"});
  expect_error([&] { ds.get(1); }, {p.string(), "dataset '/feat_a'", "row 1", "infinite value at element 5"});
  expect_error([&] { ds.get(0); }, {p.string(), "dataset '/labels'", "row 0", "label value 0.5 for class 9"});

  // Pre-batched: rows are counted within the group, the sample index is given too.
  {
    Hdf5Writer w(p);
    const Block c = block(2, 0);
    w.write("e_0/feat_a", c.a);
    w.write("e_0/feat_v", c.v);
    w.write("e_0/labels", c.l);
    Block d = block(2, 2);
    d.a.data()[kA * kF + 3] = std::nanf("");
    w.write("e_1/feat_a", d.a);
    w.write("e_1/feat_v", d.v);
    auto li = Tensor<std::int64_t, Cpu>::empty(Shape{2, kK});
    for (std::int64_t k = 0; k < 2 * kK; ++k) li.data()[k] = static_cast<std::int64_t>(d.l.data()[k]);
    li.data()[4] = 2;
    w.write("e_1/labels", li);
    w.commit();
  }
  const auto bs = AudioSetFeatures::open(p);
  EXPECT_EQ(bs.size(), 4);
  (void)bs.get(0);
  (void)bs.get(1);
  expect_error([&] { bs.get(3); }, {"dataset '/e_1/feat_a'", "row 1 (sample 3)", "NaN at element 3"});
  expect_error([&] { bs.get(2); }, {"dataset '/e_1/labels'", "row 0 (sample 2)", "label value 2 for class 4"});
}

TEST(AudioSetFeatures, AcceptsFloat64FeaturesAndBoolLabels) {
  TempDir dir("hdf5_");
  const fs::path p = dir / "f64.h5";
  const Block b = block(2, 0);
  {
    Hdf5Writer w(p);
    auto a64 = Tensor<double, Cpu>::empty(b.a.shape());
    for (std::int64_t k = 0; k < a64.numel(); ++k) a64.data()[k] = b.a.data()[k];
    w.write("feat_a", a64);
    w.write("feat_v", b.v);
    auto lb = Tensor<bool, Cpu>::empty(b.l.shape());
    for (std::int64_t k = 0; k < lb.numel(); ++k) lb.data()[k] = b.l.data()[k] != 0.0f;
    w.write("labels", lb);
    w.commit();
  }
  const auto ds = AudioSetFeatures::open(p);
  expect_sample(ds.get(1), b, 1);
  expect_sample(ds.get(0), b, 0);
}

TEST(AudioSetFeatures, OpenReportsUnreadableFiles) {
  TempDir dir("hdf5_");
  expect_error([&] { AudioSetFeatures::open(dir / "none.h5"); }, {"none.h5", "cannot open"});
  const AudioSetFeatures unopened;
  expect_error([&] { (void)unopened.size(); }, {"not opened"});
}

}  // namespace
