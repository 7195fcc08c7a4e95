// Pgd<double> against PyTorch float64 on shared weights (fixtures/pgd_reference.py): δ, logits, per-step gradients.
#include <filesystem>
#include <map>
#include <string>

#include "avgrad/attacks/pgd.hpp"
#include "avgrad/data/safetensors.hpp"
#include "avgrad/models/audio_encoders.hpp"
#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/models/video_encoders.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::attacks;
using namespace avgrad::models;
using avgrad::testing::TD;
using avgrad::testing::worst_relative_error;

namespace {

const std::filesystem::path kReference =
    std::filesystem::path(__FILE__).parent_path() / "fixtures" / "pgd_reference.safetensors";
constexpr int kSteps = 5;  // K of the fixture
constexpr double kTol = 1e-9;

using SmallAv = AVClassifier<ConvStackEncoder<double>, Conv3dEncoder<double>, LateFusion<double>, IdentityHead<double>>;

struct Reference {
  SafetensorsFile file = SafetensorsFile::open(kReference);
  TD get(const std::string& name) const { return file.get<double>(name); }
};

// The fixture's model: bench-av-small's structure at a width that runs in milliseconds.
std::unique_ptr<SmallAv> small_model(const Reference& ref) {
  Conv3dEncoderOptions vo;
  vo.channels = {4, 6, 8};
  auto audio = std::make_unique<ConvStackEncoder<double>>(ConvStackOptions{{4, 8}});
  auto video = std::make_unique<Conv3dEncoder<double>>(vo);
  auto fusion = std::make_unique<LateFusion<double>>(
      LateFusionOptions{.audio_dim = 8, .video_dim = 8, .dim = 5, .align = TimeAlign::pool, .video_bias = false});
  auto m = std::make_unique<SmallAv>(std::move(audio), std::move(video), std::move(fusion),
                                     std::make_unique<IdentityHead<double>>(5));
  nn::StateDict<double> sd;
  for (const auto& n : ref.file.names())
    if (n.rfind("state.", 0) == 0) sd[n.substr(6)] = ref.get(n);
  m->load_state_dict(sd);  // strict: every name must match
  m->eval();
  return m;
}

// The fixture's two threat models (see pgd_reference.py, THREATS).
ThreatModel threat(const std::string& tag) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const Budget video{.norm = Norm::linf, .eps = 8.0 / 255, .step = 3.0 / 255, .lo = 0.0, .hi = 1.0};
  if (tag == "linf")
    return ThreatModel::joint(Budget{.norm = Norm::linf, .eps = 0.1, .step = 0.03, .lo = -inf, .hi = inf}, video);
  return ThreatModel::joint(Budget{.norm = Norm::l2, .eps = 0.3, .step = 0.1, .lo = -inf, .hi = inf}, video);
}

// Entries whose sign (−1, 0, +1) differs: a flip moves δ by a whole step, so it must be zero, not tolerated.
std::int64_t sign_mismatches(const TD& actual, const TD& expected) {
  auto a = actual.contiguous().to_vector(), e = expected.contiguous().to_vector();
  std::int64_t n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += ((a[i] > 0) - (a[i] < 0)) != ((e[i] > 0) - (e[i] < 0));
  return n;
}

Labels<double> labels(const Reference& ref) { return {ref.file.get<std::int64_t>("labels"), {}}; }

void expect_pgd_matches(const std::string& tag) {
  Reference ref;
  auto model = small_model(ref);
  const AVInput<double> x{ref.get("audio"), ref.get("video")};
  Pgd<double> pgd(PgdOptions{.steps = kSteps, .restarts = 1, .random_start = false, .early_stop = false});
  auto r = pgd.run(*model, x, labels(ref), threat(tag));
  EXPECT_EQ(r.forward_passes, kSteps + 1);
  EXPECT_EQ(r.backward_passes, kSteps);
  for (int s : r.steps) EXPECT_EQ(s, kSteps);
  for (char b : r.bad_grad) EXPECT_FALSE(b);
  for (const char* m : {"audio", "video"}) {
    const TD& d = std::string(m) == "audio" ? r.delta.audio : r.delta.video;
    const TD expected = ref.get(tag + ".delta." + m);
    EXPECT_LT(worst_relative_error(d, expected), kTol) << tag << " δ " << m;
    EXPECT_EQ(sign_mismatches(d, expected), 0) << tag << " δ " << m;
  }
  EXPECT_LT(worst_relative_error(r.logits, ref.get(tag + ".logits")), kTol) << tag;
  // The parameters are frozen only for the attack.
  for (auto& [n, p] : model->named_parameters()) EXPECT_TRUE(p.requires_grad()) << n;
}

TEST(PgdReference, LinfJointMatchesTorch) { expect_pgd_matches("linf"); }
TEST(PgdReference, L2AudioLinfVideoMatchesTorch) { expect_pgd_matches("l2"); }

// The same iteration spelled out with the primitives Pgd is made of, comparing every step's
// gradient: the value to 1e-9 and the sign pattern exactly (the fixture guarantees no entry is
// close enough to zero for rounding to decide its sign).
void expect_steps_match(const std::string& tag) {
  Reference ref;
  auto model = small_model(ref);
  FrozenParameters frozen(*model);
  const AVInput<double> x{ref.get("audio"), ref.get("video")};
  const auto tm = threat(tag);
  const auto y = labels(ref);
  const auto objective = Objective<double>::of(LossKind::cross_entropy);
  Perturbation<double> delta{zeros<double>(x.audio.shape()), zeros<double>(x.video.shape())};
  for (int k = 0; k < kSteps; ++k) {
    auto p = probe(*model, x, delta, y, objective, true);
    for (Modality m : {Modality::audio, Modality::video}) {
      const std::string name = tag + ".step" + std::to_string(k) + ".grad." + modality_name(m);
      const TD expected = ref.get(name);
      double scale = 0;
      for (double v : expected.to_vector()) scale = std::max(scale, std::abs(v));
      EXPECT_LT(worst_relative_error(p.grad.at(m) / scale, expected / scale), kTol) << name;
      EXPECT_EQ(sign_mismatches(p.grad.at(m), expected), 0) << name;
      const Budget& b = tm.budget(m);
      ascend_(delta.at(m), p.grad.at(m), b, b.step);
      project_(delta.at(m), m == Modality::audio ? x.audio : x.video, b);
    }
  }
  EXPECT_LT(worst_relative_error(delta.audio, ref.get(tag + ".delta.audio")), kTol);
  EXPECT_LT(worst_relative_error(delta.video, ref.get(tag + ".delta.video")), kTol);
}

TEST(PgdReference, LinfJointStepGradientsMatchTorch) { expect_steps_match("linf"); }
TEST(PgdReference, L2AudioLinfVideoStepGradientsMatchTorch) { expect_steps_match("l2"); }

// The fixture exercises what it claims: clipped coordinates at ±ε and at the valid range's ends.
TEST(PgdReference, FixtureReachesTheBallAndTheRange) {
  Reference ref;
  auto da = ref.get("linf.delta.audio").to_vector();
  auto dv = ref.get("linf.delta.video").to_vector();
  auto xv = ref.get("video").to_vector();
  int at_eps = 0, inside = 0, at_range = 0;
  for (double v : da) (std::abs(v) == 0.1 ? at_eps : inside) += 1;
  for (std::size_t i = 0; i < dv.size(); ++i) at_range += (xv[i] + dv[i] == 0.0 || xv[i] + dv[i] == 1.0);
  EXPECT_GT(at_eps, 0);
  EXPECT_GT(inside, 0) << "some audio coordinate changed direction";
  EXPECT_GT(at_range, 0);
}

}  // namespace
