// The study's reference models: every factory at the small size (shapes, missing modalities,
// shared encoder keys), the default sizes' parameter counts as sums of their parts, and the
// late-fusion model against PyTorch float64 on the same weights
// (fixtures/late_fusion_reference.py).
#include <filesystem>

#include "avgrad/data/safetensors.hpp"
#include "avgrad/models/bench_av_small.hpp"
#include "avgrad/models/study.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::testing;
using namespace avgrad::models;

namespace {

static_assert(AVModel<study::LateFusionModel<float>> && AVModel<study::MidFusionModel<float>> &&
              AVModel<study::EarlyFusionModel<float>> && AVModel<study::SuperLateModel<float>> &&
              AVModel<study::AudioModel<float>> && AVModel<study::VideoModel<float, ClassifierHead<float>>> &&
              AVModel<study::BottleneckModel<float>>);

struct SmallInputs {
  TF audio, video;
};
SmallInputs small_inputs(const study::StudyOptions& o, std::int64_t batch = 2) {
  Generator g(7);
  return {randn<float>({batch, o.audio_frames, o.num_bins()}, g),
          randn<float>({batch, o.video_frames, o.video_dim}, g)};
}

TEST(StudyModels, SmallLateFusion) {
  const auto o = study::StudyOptions::small(10);
  auto m = study::late_fusion<float>(o);
  auto [xa, xv] = small_inputs(o);
  auto out = m->forward({xa, xv});
  EXPECT_EQ(out.audio_latent.shape(), Shape({2, 8, 32})) << "32 frames / 4, 8 channels × 16/4 bins";
  EXPECT_EQ(out.video_latent.shape(), Shape({2, 4, 16}));
  EXPECT_EQ(out.fused_latent.shape(), Shape({2, 4, 32})) << "audio averaged onto the 4 video steps";
  EXPECT_EQ(out.logits.shape(), Shape({2, 10}));
  EXPECT_TRUE(m->multi_label());
  EXPECT_EQ(m->forward({xa, {}}).logits.shape(), Shape({2, 10}));
  EXPECT_EQ(m->forward({{}, xv}).logits.shape(), Shape({2, 10}));
}

TEST(StudyModels, SmallMidEarlyAndSuperLate) {
  const auto o = study::StudyOptions::small(6);
  auto [xa, xv] = small_inputs(o);
  auto mid = study::mid_fusion<float, ClassifierHead<float>>(o);
  auto mo = mid->forward({xa, xv});
  EXPECT_EQ(mo.audio_latent.shape(), Shape({2, 8, 32})) << "the stem's frames";
  EXPECT_EQ(mo.video_latent.shape(), Shape({2, 4, 32})) << "the raw video features";
  EXPECT_EQ(mo.fused_latent.shape(), Shape({2, 4, 32}));
  EXPECT_EQ(mo.logits.shape(), Shape({2, 6}));
  EXPECT_FALSE(mid->multi_label());

  auto early = study::early_fusion<float>(o);
  auto eo = early->forward({xa, xv});
  // 32 audio frames + 4·32/16 = 8 video rows → 40 frames → 40/4 = 10 stem frames.
  EXPECT_EQ(eo.fused_latent.shape(), Shape({2, 10, 32}));
  EXPECT_EQ(eo.logits.shape(), Shape({2, 6}));
  EXPECT_EQ(early->forward({xa, {}}).fused_latent.shape(), Shape({2, 10, 32})) << "zeros stand in for the video";

  auto sl = study::super_late<float>(o);
  auto so = sl->forward({xa, xv});
  EXPECT_EQ(so.logits.shape(), Shape({2, 6}));
  EXPECT_EQ(so.audio_logits.shape(), Shape({2, 6}));
  EXPECT_FALSE(so.fused_latent.defined());
  EXPECT_DOUBLE_EQ(sl->audio_weight(), 0.6);
}

TEST(StudyModels, SmallBottleneckFusion) {
  auto o = study::StudyOptions::small(6);
  auto [xa, xv] = small_inputs(o);
  auto m = study::bottleneck_fusion<float>(o);
  auto out = m->forward({xa, xv});
  EXPECT_EQ(out.audio_latent.shape(), Shape({2, 8, 32})) << "the stem's frames are the audio tokens";
  EXPECT_EQ(out.video_latent.shape(), Shape({2, 4, 32})) << "the video features are the video tokens";
  EXPECT_EQ(out.fused_latent.shape(), Shape({2, 32})) << "pooled over both streams";
  EXPECT_EQ(out.logits.shape(), Shape({2, 6}));
  EXPECT_FALSE(m->multi_label());
  EXPECT_EQ(m->forward({xa, {}}).logits.shape(), Shape({2, 6})) << "a missing modality is skipped";
  // The video reaches the prediction only through the bottleneck: changing it changes the logits.
  auto xv2 = xv * 2.0f;
  EXPECT_GT(amax(abs(m->forward({xa, xv2}).logits - out.logits)).item(), 1e-5f);
  o.bottleneck_fusion_layer = o.mid_layers;
  EXPECT_THROW(study::bottleneck_fusion<float>(o), Error) << "fusion_layer must be below the depth";
}

TEST(StudyModels, UniModalAndFusedModelsShareEncoderKeys) {
  const auto o = study::StudyOptions::small(4);
  auto audio = study::audio_model<float>(o);
  auto late = study::late_fusion<float>(o);
  auto keys = [](const nn::StateDict<float>& sd, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& [n, t] : sd)
      if (n.rfind(prefix, 0) == 0) out.push_back(n);
    return out;
  };
  const auto a = keys(audio->state_dict(), "audio."), l = keys(late->state_dict(), "audio.");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, l) << "a uni-modal checkpoint's encoder loads into the fused model's branch";
}

TEST(StudyModels, RejectsInconsistentOptions) {
  auto o = study::StudyOptions::small(4);
  o.video_dim = 48;
  expect_error([&] { study::late_fusion<float>(o); }, {"study models", "video.input_dim 32", "video_dim 48"});
}

TEST(StudyModels, DefaultSizesAreSumsOfTheirParts) {
  const study::StudyOptions o;  // AudioSet: 400 × 64 audio, 10 × 2048 video, 527 classes
  auto audio = study::audio_model<float>(o);
  auto video = study::video_model<float>(o);
  const std::int64_t a = audio->encoder().parameter_count(), v = video->encoder().parameter_count();
  EXPECT_EQ(a, 11015328) << "CnnStem10C5P + one shared transformer layer (d 1024, ffn 1024)";
  const std::int64_t head = 2 * (1024 * 527 + 527);
  EXPECT_EQ(audio->parameter_count(), a + head);
  EXPECT_EQ(video->parameter_count(), v + head);
  auto late = study::late_fusion<float>(o);
  EXPECT_EQ(late->parameter_count(), a + v + 2 * (1024 * 1024 + 1024) + head);
  auto mid = study::mid_fusion<float>(o);
  const std::int64_t stem = mid->audio().parameter_count();
  const std::int64_t layer = 4 * 1024 * 1024 + 4 * 1024 + 2 * 1024 * 1024 + 1024 + 1024 + 4 * 1024;
  EXPECT_EQ(mid->parameter_count(), stem + (3072 * 1024 + 1024) + layer + head);
  auto early = study::early_fusion<float>(o);
  EXPECT_EQ(early->parameter_count(), a + head);
  auto sl = study::super_late<float>(o);
  EXPECT_EQ(sl->parameter_count(), audio->parameter_count() + video->parameter_count());
}

TEST(BenchAvSmall, TheDesignsBenchmarkModel) {
  Generator g(5);
  auto m = bench_av_small<float>(10, g);
  // audio blocks 1·32·9 + 32·64·9 + 64·128·9 + 128·128·9 (+ 2·C BN each), video 3³-kernel blocks,
  // Linear 128 → 10 with bias, Linear 128 → 10 without.
  const std::int64_t audio = 9 * (32 + 32 * 64 + 64 * 128 + 128 * 128) + 2 * (32 + 64 + 128 + 128);
  const std::int64_t video = 27 * (3 * 32 + 32 * 64 + 64 * 128) + 2 * (32 + 64 + 128);
  EXPECT_EQ(m->parameter_count(), audio + video + 1290 + 1280);
  EXPECT_FALSE(m->fusion().video_proj.bias.defined());
  auto out = m->forward({randn<float>({2, 1, 128, 100}, g), randn<float>({2, 3, 8, 32, 32}, g)});
  EXPECT_EQ(out.logits.shape(), Shape({2, 10}));
  // logits = audio_proj(global average of the audio map) + video_proj(global average of the video map)
  auto expected =
      m->fusion().audio_proj(mean(out.audio_latent, {1})) + m->fusion().video_proj(mean(out.video_latent, {1}));
  EXPECT_LT(amax(abs(out.logits - expected)).item(), 1e-5);
  static_assert(Head<IdentityHead<float>>);
}

TEST(StudyModels, DocsExample) {
  // The composition example of docs/models.md, verbatim apart from the inputs.
  Generator g(3);
  const Tensor<float> fbank = randn<float>({2, 32, 16}, g), frame_features = randn<float>({2, 4, 32}, g);
  auto audio = std::make_unique<CnnTransformer<float>>(CnnTransformerOptions::small());
  auto video = std::make_unique<FeatureSequenceEncoder<float>>(FeatureSequenceEncoderOptions::small());
  auto fusion = std::make_unique<LateFusion<float>>(
      LateFusionOptions{.audio_dim = audio->latent_dim(), .video_dim = video->latent_dim(), .dim = 64});
  auto head = std::make_unique<ClassifierHead<float>>(ClassifierHeadOptions{.in_dim = 64, .num_classes = 10});
  AVClassifier model(std::move(audio), std::move(video), std::move(fusion), std::move(head));

  auto out = model.forward({.audio = fbank, .video = frame_features}, /*branch_logits=*/true);
  EXPECT_EQ(out.audio_latent.shape(), Shape({2, 8, 32}));
  EXPECT_EQ(out.video_latent.shape(), Shape({2, 4, 16}));
  EXPECT_EQ(out.fused_latent.shape(), Shape({2, 4, 64}));
  EXPECT_EQ(out.logits.shape(), Shape({2, 10}));
  EXPECT_EQ(out.audio_logits.shape(), Shape({2, 10}));
  auto audio_only = model.forward({.audio = fbank});
  EXPECT_FALSE(audio_only.video_latent.defined());
  auto interpolated = out.fused_latent * 0.5;
  EXPECT_EQ(model.fused_head_logits(interpolated).shape(), Shape({2, 10}));
}

// ---- PyTorch reference ----------------------------------------------------------------------

const std::filesystem::path kReference =
    std::filesystem::path(__FILE__).parent_path() / "fixtures" / "late_fusion_reference.safetensors";

TEST(StudyModels, LateFusionMatchesTorch) {
  auto ref = load_safetensors<double>(kReference);
  auto get = [&](const std::string& n) {
    auto it = ref.find(n);
    if (it == ref.end()) throw std::runtime_error("reference tensor '" + n + "' not found");
    return it->second;
  };
  study::StudyOptions o;
  o.num_classes = 5;
  o.audio_frames = 24;
  o.video_frames = 4;
  o.video_dim = 12;
  o.audio.stem = {{2, 2, 4, 4, 4, 4}, {{2, 2}, {2, 2}, {1, 2}}, 2, 16};
  o.audio.num_heads = 2;
  o.audio.dim_feedforward = 16;
  o.video = {.input_dim = 12,
             .num_frames = 4,
             .d_model = 8,
             .num_heads = 2,
             .dim_feedforward = 16,
             .num_layers = 1,
             .learned_positions = true,
             .out_dim = 6};
  o.fused_dim = 10;
  auto m = study::late_fusion<double>(o);
  nn::StateDict<double> sd;
  for (const auto& [n, t] : ref)
    if (n.rfind("state.", 0) == 0) sd[n.substr(6)] = t;
  m->load_state_dict(sd);
  m->eval();
  constexpr double kTol = 1e-10;
  TD xa = get("audio").clone().requires_grad_(), xv = get("video").clone().requires_grad_();
  auto logits = m->forward({xa, xv}).logits;
  EXPECT_LT(worst_relative_error(logits, get("logits")), kTol);
  sum(logits * get("cotangent")).backward();
  EXPECT_LT(worst_relative_error(xa.grad(), get("grad.audio")), kTol);
  EXPECT_LT(worst_relative_error(xv.grad(), get("grad.video")), kTol);
  std::map<std::string, TD> params;
  for (auto& [n, p] : m->named_parameters()) params[n] = p;
  int compared = 0;
  for (const auto& [n, t] : ref) {
    if (n.rfind("grad.param.", 0) != 0) continue;
    const auto name = n.substr(11);
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_LT(worst_relative_error(params[name].grad(), t), kTol) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 4);
  NoGradGuard no_grad;
  EXPECT_LT(worst_relative_error(m->forward({get("audio"), {}}).logits, get("logits_audio_only")), kTol);
}

}  // namespace
