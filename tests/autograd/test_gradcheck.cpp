// gradcheck itself: it must catch a wrong backward, skip kinks, and refuse
// inputs it cannot perturb meaningfully.
#include "avgrad/ops/reduce.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

/// y = x², with a backward that is off by a factor (2.1x instead of 2x).
TD wrong_square(const TD& x) {
  auto y = detail::map<double>(x, [](double v) { return v * v; });
  autograd::Saved<double, Cpu> sx(x);
  return autograd::record<double, Cpu>("wrong_square", y, {x}, [sx](const TD& g, const std::vector<bool>&) {
    return autograd::Grads<double, Cpu>{g * sx.get("wrong_square") * 2.1};
  });
}

TEST(Gradcheck, CatchesAWrongBackward) {
  auto r = gradcheck<double>([](const std::vector<TD>& x) { return wrong_square(x[0]); }, {leaf({4, 3}, 1)});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.report.find("analytic"), std::string::npos) << r.report;
  EXPECT_GT(r.max_abs_error, 1e-3);
}

TEST(Gradcheck, PassesTheRightBackward) {
  auto r = gradcheck<double>([](const std::vector<TD>& x) { return square(x[0]); }, {leaf({4, 3}, 1)});
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(r.checked, 12);
}

TEST(Gradcheck, SkipsKinksButFailsWhenMostlyKinks) {
  auto x = from_vector<double>({-1.0, 0.0, 0.5, 2.0});
  x.requires_grad_();
  auto r = gradcheck<double>([](const std::vector<TD>& v) { return relu(v[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(r.skipped, 1);
  auto z = zeros<double>({4});
  z.requires_grad_();
  auto bad = gradcheck<double>([](const std::vector<TD>& v) { return relu(v[0]); }, {z});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.report.find("kinks"), std::string::npos);
}

TEST(Gradcheck, SamplesLargeInputs) {
  GradcheckOptions opt;
  opt.max_elements = 20;
  auto r = gradcheck<double>([](const std::vector<TD>& x) { return sin(x[0]); }, {leaf({50, 40}, 3)}, opt);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.checked + r.skipped, 20);
}

TEST(Gradcheck, RejectsBroadcastLeavesAndNonLeaves) {
  auto b = from_vector<double>({1.0}).expand({4});
  b.requires_grad_();
  expect_error([&] { (void)gradcheck<double>([](const std::vector<TD>& x) { return x[0]; }, {b}); },
               {"gradcheck", "stride-0"});
  auto l = leaf({3}, 1);
  auto nl = l * 2.0;
  expect_error([&] { (void)gradcheck<double>([](const std::vector<TD>& x) { return x[0]; }, {nl}); },
               {"gradcheck", "leaf"});
}

}  // namespace
