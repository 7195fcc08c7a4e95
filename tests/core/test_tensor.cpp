// Tensor basics: factories, views over shared storage, element access, printing,
// the pooled allocator and the Philox generator.
#include <cmath>
#include <numeric>

#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

TEST(Factories, ValuesAndShapes) {
  expect_close(arange<float>(0, 5), {0, 1, 2, 3, 4});
  expect_close(arange<double>(1, 2, 0.25), {1, 1.25, 1.5, 1.75});
  expect_close(linspace<double>(0, 1, 5), {0, 0.25, 0.5, 0.75, 1});
  expect_close(eye<float>(2, 3), {1, 0, 0, 0, 1, 0});
  expect_close(full<double>({2}, 7.5), {7.5, 7.5});
  EXPECT_EQ(zeros<std::int64_t>({2, 3}).shape(), (Shape{2, 3}));
  EXPECT_EQ(scalar<float>(3.f).dim(), 0);
  EXPECT_EQ(scalar<float>(3.f).item(), 3.f);
  expect_error([] { (void)zeros<float>({2, -1}); }, {"empty", "negative"});
  expect_error([] { (void)from_vector<float>({1, 2, 3}, {2, 2}); }, {"from_vector", "3", "(2,2)"});
  expect_error([] { (void)arange<float>(0, 1, 0); }, {"arange"});
  expect_error([] { (void)Shape({1, 2, 3, 4, 5, 6, 7, 8, 9}); }, {"Shape", "rank"});
}

TEST(Factories, RandomIsSeededAndDistributed) {
  Generator g1(42), g2(42), g3(43);
  auto a = randn<double>({100000}, g1);
  auto b = randn<double>({100000}, g2);
  auto c = randn<double>({100000}, g3);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_NE(a.to_vector(), c.to_vector());
  EXPECT_NEAR(mean(a).item(), 0.0, 0.02);
  EXPECT_NEAR(std_dev(a).item(), 1.0, 0.02);
  auto u = rand<float>({100000}, g1, -1, 3);
  EXPECT_NEAR(mean(u).item(), 1.0, 0.03);
  EXPECT_GE(amin(u).item(), -1.f);
  EXPECT_LT(amax(u).item(), 3.f);
  // consecutive draws do not repeat the stream
  auto d = rand<float>({4}, g1), e = rand<float>({4}, g1);
  EXPECT_NE(d.to_vector(), e.to_vector());
  auto k = randint<std::int64_t>(3, 7, {1000}, g1);
  for (auto v : k.to_vector()) EXPECT_TRUE(v >= 3 && v < 7);
}

TEST(Philox, KnownAnswerVectors) {
  // Philox4x32-10 test vectors of Salmon et al. (Random123 kat_vectors).
  auto z = philox4x32_10(0, 0, 0);
  EXPECT_EQ(z.v[0], 0x6627e8d5u);
  EXPECT_EQ(z.v[1], 0xe169c58du);
  EXPECT_EQ(z.v[2], 0xbc57ac4cu);
  EXPECT_EQ(z.v[3], 0x9b00dbd8u);
  auto f = philox4x32_10(~0ull, ~0ull, ~0ull);
  EXPECT_EQ(f.v[0], 0x408f276du);
  EXPECT_EQ(f.v[1], 0x41c83b0eu);
  EXPECT_EQ(f.v[2], 0xa20bc7c6u);
  EXPECT_EQ(f.v[3], 0x6d5451fdu);
  auto p = philox4x32_10(0x85a308d3243f6a88ull, 0x0370734413198a2eull, 0x299f31d0a4093822ull);
  EXPECT_EQ(p.v[0], 0xd16cfe09u);
  EXPECT_EQ(p.v[1], 0x94fdccebu);
  EXPECT_EQ(p.v[2], 0x5001e420u);
  EXPECT_EQ(p.v[3], 0x24126ea1u);
}

TEST(Philox, GeneratorStateRoundTrips) {
  Generator g(7);
  (void)rand<float>({10}, g);
  auto seed = g.seed(), off = g.offset();
  auto a = randn<float>({5}, g);
  Generator h;
  h.set_state(seed, off);
  EXPECT_EQ(a.to_vector(), randn<float>({5}, h).to_vector());
}

TEST(Views, ShareStorageAndReadCorrectly) {
  auto x = arange<float>(0, 24).reshape({2, 3, 4});
  auto p = x.permute({2, 0, 1});  // (4,2,3)
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.storage(), x.storage());
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.at({3, 1, 2}), x.at({1, 2, 3}));
  auto s = x.slice(2, 1, 4, 2);  // columns 1, 3
  expect_close(s.contiguous(), {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  auto sel = x.select(1, -1);  // (2,4): row 2 of each
  expect_close(sel, {8, 9, 10, 11, 20, 21, 22, 23});
  auto n = x.narrow(0, 1, 1).squeeze(0);
  EXPECT_EQ(n.shape(), (Shape{3, 4}));
  EXPECT_EQ(n.at({0, 0}), 12.f);
  auto e = from_vector<float>({1, 2, 3}, {3, 1}).expand({3, 4});
  EXPECT_EQ(e.strides()[1], 0);
  expect_close(e.contiguous(), {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(x.flatten().shape(), (Shape{24}));
  EXPECT_EQ(x.reshape({-1, 6}).shape(), (Shape{4, 6}));
  // a transposed tensor reshapes by copying; view() refuses
  auto t = x.transpose(1, 2);
  expect_error([&] { (void)t.view({2, 12}); }, {"view", "reshape"});
  auto r = t.reshape({2, 12});
  EXPECT_NE(r.storage(), x.storage());
  EXPECT_EQ(r.at({0, 1}), 4.f);  // t[0,0,1] = x[0,1,0]
  // writes through a view are visible in the base
  auto col = x.select(2, 0);
  col.set({0, 0}, -5.f);
  EXPECT_EQ(x.at({0, 0, 0}), -5.f);
}

TEST(Views, ErrorsNameOpAndShape) {
  auto x = zeros<float>({2, 3});
  expect_error([&] { (void)x.reshape({4, 2}); }, {"reshape", "(4,2)", "6"});
  expect_error([&] { (void)x.permute({0, 0}); }, {"permute", "repeated"});
  expect_error([&] { (void)x.narrow(1, 2, 5); }, {"narrow", "out of bounds"});
  expect_error([&] { (void)x.select(0, 2); }, {"select", "index 2"});
  expect_error([&] { (void)x.expand({4, 3}); }, {"expand", "(2,3)", "(4,3)"});
  expect_error([&] { (void)x.at({2, 0}); }, {"at", "out of range"});
  expect_error([&] { (void)x.item(); }, {"item", "6 elements"});
  expect_error([&] { (void)x.size(2); }, {"size", "axis 2"});
}

TEST(Views, GradientsFlowThroughViews) {
  Fn f = [](const std::vector<TD>& x) {
    auto v = x[0].permute({1, 0, 2}).slice(2, 1, 5, 2).reshape({3, 4}).unsqueeze(0).expand({2, 3, 4});
    return v.select(0, 1) *
           x[0].narrow(0, 0, 1).flatten(0, 1).narrow(0, 1, 2).narrow(1, 0, 2).t().reshape({1, 4}).contiguous();
  };
  expect_gradcheck(f, {leaf({2, 3, 5}, 3)});
  Fn g = [](const std::vector<TD>& x) { return x[0].transpose(0, 1).reshape({-1}).clone(); };
  expect_gradcheck(g, {leaf_transposed({3, 4}, 4)});
}

TEST(Tensor, CastAndGradThroughCast) {
  auto x = from_vector<float>({1.5f, -2.f});
  x.requires_grad_();
  auto y = x.to<double>();
  EXPECT_EQ(y.dtype(), "float64");
  sum(y * y).backward();
  expect_close(x.grad(), {3.f, -4.f});
  auto i = from_vector<float>({1.7f, -2.2f}).to<std::int64_t>();
  EXPECT_EQ(i.to_vector(), (std::vector<std::int64_t>{1, -2}));
}

TEST(Tensor, FromBlobIsNonOwning) {
  std::vector<double> buf{1, 2, 3, 4, 5, 6};
  auto t = from_blob(buf.data(), {2, 3});
  EXPECT_FALSE(t.storage()->owning());
  buf[4] = 50;
  EXPECT_EQ(t.at({1, 1}), 50);
}

TEST(Tensor, PrintingShowsShapeAndDtype) {
  auto s = arange<float>(0, 4).reshape({2, 2}).str();
  EXPECT_NE(s.find("shape=(2,2)"), std::string::npos) << s;
  EXPECT_NE(s.find("float32"), std::string::npos) << s;
  EXPECT_NE(s.find("3"), std::string::npos) << s;
  EXPECT_NE(Tensor<float>().str().find("undefined"), std::string::npos);
}

TEST(Allocator, SteadyStateReusesBlocks) {
  auto& pool = CpuPoolAllocator::instance();
  { auto warm = empty<float>({1000, 1000}); }
  auto before = pool.stats();
  for (int i = 0; i < 50; ++i) {
    auto a = empty<float>({1000, 1000});
    auto b = a.reshape({-1});
    (void)b;
  }
  auto after = pool.stats();
  EXPECT_EQ(after.system_allocations, before.system_allocations) << "steady-state loop went to the system";
  EXPECT_EQ(after.allocations, before.allocations + 50);
  EXPECT_EQ(after.in_use, before.in_use);
  EXPECT_GE(after.peak_in_use, 4000000u);
  EXPECT_EQ(CpuPoolAllocator::size_class(1), 64u);
  EXPECT_EQ(CpuPoolAllocator::size_class(100), 128u);
  EXPECT_EQ(CpuPoolAllocator::size_class((1u << 20) + 1), 2u << 20);
  pool.empty_cache();
  EXPECT_EQ(pool.stats().reserved, pool.stats().in_use);
}

}  // namespace
