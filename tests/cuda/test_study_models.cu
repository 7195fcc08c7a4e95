// The study's models at their small size on the GPU: each built on both devices, the GPU
// twin loaded from the CPU model's state dict (a cross-device load), then logits, the loss
// and the gradients with respect to both inputs compared with the CPU's — in float32, and with
// bfloat16 and float16 GEMM operands (MatmulPrecisionGuard) on both devices.
#include <algorithm>
#include <cmath>

#include "cuda_twin.cuh"

using namespace avgrad;
using namespace avgrad::models;
using avgrad::testing::close_to_cpu;

namespace {

struct Inputs {
  Tensor<float, Cpu> audio, video;
  Tensor<std::int64_t, Cpu> labels;
};
Inputs inputs(const study::StudyOptions& o, std::int64_t batch) {
  Generator g(7);
  Inputs in{randn<float>({batch, o.audio_frames, o.num_bins()}, g),
            randn<float>({batch, o.video_frames, o.video_dim}, g), randint<std::int64_t>(0, o.num_classes, {batch}, g)};
  return in;
}

/// Builds the model on both devices with `make`, copies the CPU weights to the GPU and
/// compares one forward and backward pass in eval mode.
template <class MakeCpu, class MakeGpu> void expect_model_twin(const char* what, MakeCpu make_cpu, MakeGpu make_gpu) {
  SCOPED_TRACE(what);
  const auto o = study::StudyOptions::small(5);
  Generator gc(11), gg(11);
  auto mc = make_cpu(o, gc);
  auto mg = make_gpu(o, gg);
  const auto report = mg->load_state_dict(mc->state_dict());
  ASSERT_TRUE(report.ok()) << report.str();
  mc->eval();
  mg->eval();
  auto in = inputs(o, 3);
  auto xa = in.audio.clone(), xv = in.video.clone();
  xa.requires_grad_();
  xv.requires_grad_();
  auto ga = in.audio.to<Cuda>(), gv = in.video.to<Cuda>();
  ga.requires_grad_();
  gv.requires_grad_();
  auto oc = mc->forward({xa, xv});
  auto og = mg->forward({ga, gv});
  ASSERT_TRUE(close_to_cpu(og.logits, oc.logits, 1e-4, 1e-5)) << "logits";
  auto lc = cross_entropy(oc.logits, in.labels);
  auto lg = cross_entropy(og.logits, in.labels.to<Cuda>());
  EXPECT_TRUE(close_to_cpu(lg, lc, 1e-5, 1e-6)) << "loss";
  lc.backward();
  lg.backward();
  EXPECT_TRUE(close_to_cpu(ga.grad(), xa.grad(), 1e-3, 1e-6)) << "gradient of the audio input";
  EXPECT_TRUE(close_to_cpu(gv.grad(), xv.grad(), 1e-3, 1e-6)) << "gradient of the video input";
}

/// ‖gpu − cpu‖₂ / ‖cpu‖₂.
double relative_l2(const Tensor<float, Cuda>& gpu, const Tensor<float, Cpu>& cpu) {
  const auto g = gpu.detach().to<Cpu>().to_vector(), c = cpu.detach().contiguous().to_vector();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    num += (double(g[i]) - c[i]) * (double(g[i]) - c[i]);
    den += double(c[i]) * c[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

/// The mid-fusion model (transformers: every product lowered) under lowered GEMMs: both devices round the same
/// operands, so they agree closely; an activation one ulp apart in float may round to a
/// neighbouring 16-bit value, hence a norm-wise comparison. Both differ from float32.
TEST(CudaStudyModels, LoweredPrecisionMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  const auto o = study::StudyOptions::small(5);
  for (MatmulPrecision p : {MatmulPrecision::bfloat16, MatmulPrecision::float16}) {
    SCOPED_TRACE(matmul_precision_name(p));
    Generator gc(11), gg(11);
    auto mc = study::mid_fusion<float, ClassifierHead<float>>(o, gc);
    auto mg = study::mid_fusion<float, ClassifierHead<float, Cuda>>(o, gg);
    ASSERT_TRUE(mg->load_state_dict(mc->state_dict()).ok());
    mc->eval();
    mg->eval();
    auto in = inputs(o, 3);
    const auto exact = mc->forward({in.audio, in.video}).logits.detach();
    MatmulPrecisionGuard guard(p);
    auto xa = in.audio.clone();
    auto ga = in.audio.to<Cuda>();
    xa.requires_grad_();
    ga.requires_grad_();
    auto oc = mc->forward({xa, in.video});
    auto og = mg->forward({ga, in.video.to<Cuda>()});
    EXPECT_LT(relative_l2(og.logits, oc.logits), 1e-3) << "logits";
    EXPECT_GT(relative_l2(oc.logits.detach().to<Cuda>(), exact), 1e-5) << "the lowered logits are not float32's";
    cross_entropy(oc.logits, in.labels).backward();
    cross_entropy(og.logits, in.labels.to<Cuda>()).backward();
    EXPECT_LT(relative_l2(ga.grad(), xa.grad()), 1e-2) << "gradient of the audio input";
  }
}

TEST(CudaStudyModels, LateFusionMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  expect_model_twin(
      "late fusion", [](const auto& o, Generator& g) { return study::late_fusion<float, ClassifierHead<float>>(o, g); },
      [](const auto& o, Generator& g) { return study::late_fusion<float, ClassifierHead<float, Cuda>>(o, g); });
}

TEST(CudaStudyModels, MidEarlyAndBottleneckFusionMatchTheCpu) {
  AVGRAD_REQUIRE_GPU();
  expect_model_twin(
      "mid fusion", [](const auto& o, Generator& g) { return study::mid_fusion<float, ClassifierHead<float>>(o, g); },
      [](const auto& o, Generator& g) { return study::mid_fusion<float, ClassifierHead<float, Cuda>>(o, g); });
  expect_model_twin(
      "early fusion",
      [](const auto& o, Generator& g) { return study::early_fusion<float, ClassifierHead<float>>(o, g); },
      [](const auto& o, Generator& g) { return study::early_fusion<float, ClassifierHead<float, Cuda>>(o, g); });
  expect_model_twin(
      "bottleneck fusion",
      [](const auto& o, Generator& g) { return study::bottleneck_fusion<float, ClassifierHead<float>>(o, g); },
      [](const auto& o, Generator& g) { return study::bottleneck_fusion<float, ClassifierHead<float, Cuda>>(o, g); });
}

TEST(CudaStudyModels, AttentionPoolHeadModelsMatchTheCpu) {
  AVGRAD_REQUIRE_GPU();
  expect_model_twin(
      "late fusion, attention-pool head", [](const auto& o, Generator& g) { return study::late_fusion<float>(o, g); },
      [](const auto& o, Generator& g) { return study::late_fusion<float, AttentionPoolHead<float, Cuda>>(o, g); });
}

TEST(CudaStudyModels, WeightsRoundTripBetweenDevices) {
  AVGRAD_REQUIRE_GPU();
  const auto o = study::StudyOptions::small(5);
  Generator g1(1), g2(2);
  auto gpu = study::late_fusion<float, ClassifierHead<float, Cuda>>(o, g1);
  auto cpu = study::late_fusion<float, ClassifierHead<float>>(o, g2);
  ASSERT_TRUE(cpu->load_state_dict(gpu->state_dict()).ok());
  const auto sc = cpu->state_dict();
  for (const auto& [name, t] : gpu->state_dict()) EXPECT_TRUE(close_to_cpu(t, sc.at(name), 0.0, 0.0)) << name;
}

}  // namespace
