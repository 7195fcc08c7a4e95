// Checkpoints: a PyTorch-written state dict loads and reproduces PyTorch's output;
// avgrad state dicts and full checkpoints round-trip; bad files fail by name.
#include <filesystem>
#include <fstream>

#include "avgrad/nn/conv.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/nn/normalization.hpp"
#include "avgrad/ops/loss.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/optim/adam.hpp"
#include "avgrad/optim/schedule.hpp"
#include "avgrad/train/checkpoint.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(__FILE__).parent_path() / "fixtures";

/// The model of fixtures/torch_model.py, with the same child names.
struct Net : nn::Module<double> {
  nn::Conv2d<double> conv{1, 4, 3, 1, 1};
  nn::BatchNorm2d<double> bn{4};
  nn::Linear<double> fc{4 * 5 * 5, 3};
  Net() {
    register_module("conv", conv);
    register_module("bn", bn);
    register_module("fc", fc);
  }
  TD forward(const TD& x) { return fc(relu(bn(conv(x))).flatten(1)); }
};

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()) + ".safetensors");
}

TEST(Checkpoint, LoadsPyTorchStateDictAndMatchesItsOutput) {
  Net net;
  auto report = load_state_dict(kFixtures / "model.safetensors", net);
  EXPECT_TRUE(report.ok()) << report.str();
  net.eval();
  auto io = SafetensorsFile::open(kFixtures / "io.safetensors");
  auto x = io.get<double>("input");
  auto want = io.get<double>("output");
  NoGradGuard ng;
  auto y = net.forward(x);
  ASSERT_EQ(y.shape(), want.shape());
  EXPECT_TRUE(allclose(y, want, 1e-12, 1e-12)) << y << "\nvs\n" << want;
  EXPECT_EQ(net.bn.num_batches_tracked.item(), 3.0);  // int64 in the file
}

TEST(Checkpoint, StateDictRoundTripAndStrictErrors) {
  Generator g(5);
  Net a, b;
  nn::init::normal_(a.fc.weight, 0, 1, g);
  auto path = temp_path("avgrad_sd");
  save_state_dict(path, a);
  EXPECT_TRUE(load_state_dict(path, b).ok());
  for (auto& [n, t] : a.state_dict()) EXPECT_EQ(t.to_vector(), b.state_dict().at(n).to_vector()) << n;
  EXPECT_EQ(SafetensorsFile::open(path).metadata().at("avgrad.format_version"), "1");

  struct Smaller : nn::Module<double> {
    nn::Linear<double> fc{100, 2};
    Smaller() { register_module("fc", fc); }
  } small;
  expect_error([&] { load_state_dict(path, small); },
               {"load_state_dict", path.string(), "fc.weight: expected (2,100), got (3,100)", "unexpected keys: bn."});
  std::filesystem::remove(path);
  expect_error([&] { load_state_dict(path, b); }, {path.string()});
}

TEST(Checkpoint, FullTrainingStateResumesExactly) {
  auto step = [](Net& net, optim::AdamW<double>& opt, optim::LRScheduler& sched, Generator& gen) {
    auto x = randn<double>({4, 1, 5, 5}, gen);
    auto y = randint<std::int64_t>(0, 3, {4}, gen);
    auto loss = cross_entropy(net.forward(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    sched.step();
  };
  auto path = temp_path("avgrad_ckpt");
  Net a;
  Generator ga(11);
  optim::AdamW<double> oa(a.named_trainable_parameters(), {.lr = 1e-2});
  optim::LinearWarmupCosineDecayLR sa(oa, {.warmup_steps = 2, .total_steps = 8});
  for (int i = 0; i < 3; ++i) step(a, oa, sa, ga);
  save_checkpoint<double>(path, {&a, &oa, &sa, &ga, 3, {{"note", "half way"}}});
  for (int i = 0; i < 3; ++i) step(a, oa, sa, ga);

  Net b;
  Generator gb(999);
  optim::AdamW<double> ob(b.named_trainable_parameters(), {.lr = 1e-2});
  optim::LinearWarmupCosineDecayLR sb(ob, {.warmup_steps = 2, .total_steps = 8});
  CheckpointParts<double> parts{&b, &ob, &sb, &gb, 0, {}};
  load_checkpoint(path, parts);
  EXPECT_EQ(parts.step, 3);
  EXPECT_EQ(parts.metadata.at("note"), "half way");
  for (int i = 0; i < 3; ++i) step(b, ob, sb, gb);
  for (auto& [n, t] : a.state_dict()) EXPECT_EQ(t.to_vector(), b.state_dict().at(n).to_vector()) << n;

  // a state dict is not a checkpoint, and a truncated checkpoint is rejected by name
  auto sd = temp_path("avgrad_sd_only");
  save_state_dict(sd, a);
  expect_error([&] { load_checkpoint(sd, parts); }, {"load_checkpoint", "not a checkpoint"});
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 10);
  expect_error([&] { load_checkpoint(path, parts); }, {path.string()});
  std::filesystem::remove(path);
  std::filesystem::remove(sd);
}

}  // namespace
