// The optimizers' fused update (SGD with momentum and Nesterov, Adam, AdamW with amsgrad),
// gradient clipping, and PGD / FGSM / MI-FGSM on the study's late-fusion model, each run on
// both devices from the same state and compared.
#include "cuda_twin.cuh"

using namespace avgrad;
using namespace avgrad::attacks;
using avgrad::testing::close_to_cpu;

namespace {

/// Three steps of an optimizer on a quadratic, on both devices, parameters compared after each.
template <class MakeCpu, class MakeGpu>
void expect_optimizer_twin(const char* what, MakeCpu make_cpu, MakeGpu make_gpu) {
  SCOPED_TRACE(what);
  Generator g(3);
  auto pc = randn<float>({7, 5}, g), target = randn<float>({7, 5}, g);
  pc.requires_grad_();
  auto pg = pc.detach().to<Cuda>();
  pg.requires_grad_();
  auto oc = make_cpu(std::vector<Tensor<float, Cpu>>{pc});
  auto og = make_gpu(std::vector<Tensor<float, Cuda>>{pg});
  const auto tg = target.to<Cuda>();
  for (int step = 0; step < 3; ++step) {
    oc.zero_grad();
    og.zero_grad();
    sum((pc - target) * (pc - target)).backward();
    sum((pg - tg) * (pg - tg)).backward();
    oc.step();
    og.step();
    ASSERT_TRUE(close_to_cpu(pg.detach(), pc.detach(), 1e-5, 1e-6)) << "after step " << step;
  }
}

TEST(CudaOptim, SgdAdamAndAdamWMatchTheCpu) {
  AVGRAD_REQUIRE_GPU();
  expect_optimizer_twin(
      "SGD, momentum, Nesterov, weight decay",
      [](auto p) {
        return optim::SGD<float>(p, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
      },
      [](auto p) {
        return optim::SGD<float, Cuda>(p, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
      });
  expect_optimizer_twin(
      "Adam", [](auto p) { return optim::Adam<float>(p, {.lr = 0.01, .weight_decay = 0.1}); },
      [](auto p) { return optim::Adam<float, Cuda>(p, {.lr = 0.01, .weight_decay = 0.1}); });
  expect_optimizer_twin(
      "AdamW, amsgrad", [](auto p) { return optim::AdamW<float>(p, {.lr = 0.01, .amsgrad = true}); },
      [](auto p) { return optim::AdamW<float, Cuda>(p, {.lr = 0.01, .amsgrad = true}); });
}

TEST(CudaOptim, GradientClippingMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  Generator g(4);
  for (double norm_type : {2.0, 1.0, optim::kInfNorm}) {
    auto a = randn<float>({30, 3}, g, 0.0, 5.0), b = randn<float>({11}, g, 0.0, 5.0);
    std::vector<Tensor<float, Cpu>> pc{a.clone(), b.clone()};
    std::vector<Tensor<float, Cuda>> pg{a.to<Cuda>(), b.to<Cuda>()};
    for (std::size_t i = 0; i < 2; ++i) {
      pc[i].set_grad(pc[i].detach() * 3.0);
      pg[i].set_grad(pg[i].detach() * 3.0);
    }
    const double nc = optim::clip_grad_norm_(pc, 1.0, norm_type), ng = optim::clip_grad_norm_(pg, 1.0, norm_type);
    EXPECT_NEAR(ng, nc, 1e-5 * nc) << "norm type " << norm_type;
    for (std::size_t i = 0; i < 2; ++i) EXPECT_TRUE(close_to_cpu(pg[i].grad(), pc[i].grad(), 1e-5, 1e-6));
  }
}

struct AttackTwin {
  std::unique_ptr<models::study::LateFusionModel<float, models::ClassifierHead<float>>> cpu;
  std::unique_ptr<models::study::LateFusionModel<float, models::ClassifierHead<float, Cuda>>> gpu;
  models::AVInput<float> x;
  Labels<float> y;
  models::AVInput<float, Cuda> xg;  ///< x and y on the GPU
  Labels<float, Cuda> yg;
};
AttackTwin attack_twin() {
  const auto o = models::study::StudyOptions::small(5);
  Generator g(21);
  AttackTwin t;
  t.cpu = models::study::late_fusion<float, models::ClassifierHead<float>>(o, g);
  t.gpu = models::study::late_fusion<float, models::ClassifierHead<float, Cuda>>(o, g);
  EXPECT_TRUE(t.gpu->load_state_dict(t.cpu->state_dict()).ok());
  t.cpu->eval();
  t.gpu->eval();
  t.x = {rand<float>({4, o.audio_frames, o.num_bins()}, g), rand<float>({4, o.video_frames, o.video_dim}, g)};
  t.y.classes = randint<std::int64_t>(0, 5, {4}, g);
  t.xg = models::to_device<Cuda>(t.x);
  t.yg = to_device<Cuda>(t.y);
  return t;
}

template <class A, class B>
void expect_attack_twin(const char* what, const A& on_cpu, const B& on_gpu, const ThreatModel& tm) {
  SCOPED_TRACE(what);
  auto t = attack_twin();
  const auto rc = on_cpu.run(*t.cpu, t.x, t.y, tm);
  const auto rg = on_gpu.run(*t.gpu, t.xg, t.yg, tm);
  EXPECT_TRUE(close_to_cpu(rg.logits, rc.logits, 1e-3, 1e-4)) << "logits at x + δ";
  for (Modality m : {Modality::audio, Modality::video}) {
    if (!tm.attacks(m)) continue;
    // a sign step flips where a gradient entry is ~0; allow a few such coordinates
    const auto dg = rg.delta.at(m).template to<Cpu>().to_vector(), dc = rc.delta.at(m).to_vector();
    std::size_t off = 0;
    for (std::size_t i = 0; i < dc.size(); ++i) off += std::abs(dg[i] - dc[i]) > 1e-4;
    EXPECT_LE(off, dc.size() / 100 + 1) << modality_name(m) << ": " << off << " of " << dc.size() << " entries differ";
  }
  EXPECT_EQ(rg.forward_passes, rc.forward_passes);
  EXPECT_EQ(rg.steps, rc.steps);
}

TEST(CudaAttacks, PgdFgsmAndMiFgsmMatchTheCpu) {
  AVGRAD_REQUIRE_GPU();
  const Budget linf{.norm = Norm::linf, .eps = 0.05, .step = 0.0125, .lo = 0.0, .hi = 1.0};
  const Budget l2{.norm = Norm::l2, .eps = 0.5, .step = 0.125};
  expect_attack_twin("PGD-10, L-inf, joint", Pgd<float>(PgdOptions{.steps = 10, .seed = 3}),
                     Pgd<float, Cuda>(PgdOptions{.steps = 10, .seed = 3}), ThreatModel::joint(linf, linf));
  expect_attack_twin("PGD-5 x2 restarts, L2, audio", Pgd<float>(PgdOptions{.steps = 5, .restarts = 2, .seed = 4}),
                     Pgd<float, Cuda>(PgdOptions{.steps = 5, .restarts = 2, .seed = 4}), ThreatModel::audio_only(l2));
  expect_attack_twin("FGSM, video", fgsm<float>(), fgsm<float, Cuda>(), ThreatModel::video_only(linf));
  expect_attack_twin("MI-FGSM", mi_fgsm<float>(5), mi_fgsm<float, Cuda>(5), ThreatModel::joint(linf, linf));
}

/// APGD halves each example's step on comparisons of losses, so a rounding-level tie may send the
/// two devices down different (equally valid) trajectories: what must agree is the budget, the
/// pass counts and, but for such an example, the outcome.
template <class A, class B>
void expect_apgd_twin(const char* what, const A& on_cpu, const B& on_gpu, const ThreatModel& tm) {
  SCOPED_TRACE(what);
  auto t = attack_twin();
  const auto rc = on_cpu.run(*t.cpu, t.x, t.y, tm);
  const auto rg = on_gpu.run(*t.gpu, t.xg, t.yg, tm);
  EXPECT_EQ(rg.forward_passes, rc.forward_passes);
  EXPECT_EQ(rg.backward_passes, rc.backward_passes);
  EXPECT_EQ(rg.steps, rc.steps);
  std::size_t differ = 0;
  for (std::size_t b = 0; b < rc.success.size(); ++b) differ += rg.success[b] != rc.success[b];
  EXPECT_LE(differ, 1u) << "success flags";
  for (Modality m : {Modality::audio, Modality::video}) {
    if (!tm.attacks(m)) continue;
    const auto n = geometry::norms(rg.delta.at(m), tm.budget(m).norm);
    for (double v : n) EXPECT_LE(v, tm.budget(m).eps * (1 + 1e-5)) << modality_name(m) << " δ inside the ball";
  }
  EXPECT_TRUE(close_to_cpu(on_gpu.run(*t.gpu, t.xg, t.yg, tm).logits, rg.logits.template to<Cpu>(), 0, 0))
      << "the GPU run is deterministic";
}

TEST(CudaAttacks, ApgdMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  const Budget linf{.norm = Norm::linf, .eps = 0.05, .lo = 0.0, .hi = 1.0};
  const Budget l2{.norm = Norm::l2, .eps = 0.5};
  expect_apgd_twin("APGD-CE-10, L-inf, joint", Apgd<float>(ApgdOptions{.steps = 10}),
                   Apgd<float, Cuda>(ApgdOptions{.steps = 10}), ThreatModel::joint(linf, linf));
  expect_apgd_twin("APGD-DLR-8 x2 restarts, L2, audio",
                   Apgd<float>(ApgdOptions{.steps = 8, .restarts = 2}, Objective<float>::of(LossKind::dlr)),
                   Apgd<float, Cuda>(ApgdOptions{.steps = 8, .restarts = 2}, Objective<float, Cuda>::of(LossKind::dlr)),
                   ThreatModel::audio_only(l2));
}

TEST(CudaAttacks, MarginAndDlrObjectivesMatchTheCpu) {
  AVGRAD_REQUIRE_GPU();
  Generator g(31);
  auto z = randn<float>({6, 5}, g);
  z.requires_grad_();
  const auto y = randint<std::int64_t>(0, 5, {6}, g), t = randint<std::int64_t>(0, 5, {6}, g);
  const Labels<float> yc{y, {}};
  const Labels<float, Cuda> yg{y.to<Cuda>(), {}};
  using avgrad::testing::expect_twin;
  expect_twin<float>(
      "margin", {z}, [&](const auto& v) { return margin_loss(v[0], yc); },
      [&](const auto& v) { return margin_loss(v[0], yg); });
  expect_twin<float>(
      "dlr", {z}, [&](const auto& v) { return dlr_loss(v[0], yc); }, [&](const auto& v) { return dlr_loss(v[0], yg); });
  expect_twin<float>(
      "targeted dlr", {z}, [&](const auto& v) { return dlr_targeted_loss(v[0], y, t); },
      [&](const auto& v) { return dlr_targeted_loss(v[0], y.to<Cuda>(), t.to<Cuda>()); });
  const Labels<float, Cuda> bad{from_vector<std::int64_t>({0, 7, 1, 2, 3, 4}).to<Cuda>(), {}};
  EXPECT_THROW(margin_loss(z.detach().to<Cuda>(), bad), Error) << "a label outside [0, K)";
}

/// CW-L2 decides on thresholds (success, abort-early, the binary search over c), so examples at a
/// rounding-level tie may take other paths on the two devices: what must agree is the outcome, and
/// the minimal norms where both succeed.
TEST(CudaAttacks, CarliniWagnerMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto t = attack_twin();
  const Budget range{.norm = Norm::l2, .eps = 1.0, .lo = 0.0, .hi = 1.0};
  const auto tm = ThreatModel::joint(range, range);
  const CarliniWagnerOptions o{.binary_steps = 3, .steps = 20, .lr = 0.05};
  const auto rc = CarliniWagnerL2<float>(o).run(*t.cpu, t.x, t.y, tm);
  const auto rg = CarliniWagnerL2<float, Cuda>(o).run(*t.gpu, t.xg, t.yg, tm);
  std::size_t differ = 0;
  for (std::size_t b = 0; b < rc.success.size(); ++b) differ += rg.success[b] != rc.success[b];
  EXPECT_LE(differ, 1u) << "success flags";
  const auto nc = joint_l2_norms(rc.delta), ng = joint_l2_norms(rg.delta);
  for (std::size_t b = 0; b < nc.size(); ++b)
    if (rc.success[b] && rg.success[b]) EXPECT_NEAR(ng[b], nc[b], 0.05 * nc[b] + 1e-4) << "example " << b;
  const auto adv = rg.adversarial(t.xg);
  for (const auto* part : {&adv.audio, &adv.video})
    for (float v : part->template to<Cpu>().to_vector())
      ASSERT_TRUE(v >= -1e-6f && v <= 1 + 1e-6f) << "x + δ in [0, 1]";
  const auto again = CarliniWagnerL2<float, Cuda>(o).run(*t.gpu, t.xg, t.yg, tm);
  EXPECT_TRUE(close_to_cpu(again.logits, rg.logits.template to<Cpu>(), 0, 0)) << "the GPU run is deterministic";
  EXPECT_EQ(again.steps, rg.steps);
}

/// Universal PGD learns one δ from host batches (moved per batch) on the GPU and from the same
/// batches on the CPU; sign steps of a summed gradient agree but where an entry is ~0.
TEST(CudaAttacks, UniversalPgdMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto t = attack_twin();
  const std::vector<std::pair<models::AVInput<float>, Labels<float>>> batches{{t.x, t.y}, {t.x, t.y}};
  const Budget linf{.norm = Norm::linf, .eps = 0.05, .step = 0.01, .lo = 0.0, .hi = 1.0};
  const Budget l2{.norm = Norm::l2, .eps = 0.5, .step = 0.2, .lo = 0.0, .hi = 1.0};
  struct Case {
    ThreatModel tm;
    bool project;
  };
  // the unprojected variant steps through the fused kernel with an infinite ball
  for (const auto& [tm, project] : {Case{ThreatModel::joint(linf, linf), true}, Case{ThreatModel::audio_only(l2), true},
                                    Case{ThreatModel::video_only(linf), false}}) {
    SCOPED_TRACE(tm.str() + (project ? "" : ", unprojected"));
    const UniversalPgdOptions o{.passes = 3, .project = project};
    const auto uc = UniversalPgd<float>(o).run(*t.cpu, batches, tm);
    const auto ug = UniversalPgd<float, Cuda>(o).run(*t.gpu, batches, tm);
    EXPECT_EQ(ug.updates, uc.updates);
    EXPECT_EQ(ug.forward_passes, uc.forward_passes);
    ASSERT_EQ(ug.pass_objective.size(), uc.pass_objective.size());
    for (std::size_t i = 0; i < uc.pass_objective.size(); ++i)
      EXPECT_NEAR(ug.pass_objective[i], uc.pass_objective[i], 1e-3 * std::abs(uc.pass_objective[i]) + 1e-4);
    for (Modality m : {Modality::audio, Modality::video}) {
      if (!tm.attacks(m)) continue;
      const auto dg = ug.delta.at(m).template to<Cpu>().to_vector(), dc = uc.delta.at(m).to_vector();
      ASSERT_EQ(dg.size(), dc.size());
      std::size_t off = 0;
      for (std::size_t i = 0; i < dc.size(); ++i) off += std::abs(dg[i] - dc[i]) > 1e-4;
      EXPECT_LE(off, dc.size() / 100 + 1) << modality_name(m) << ": " << off << " of " << dc.size() << " differ";
      const auto n = geometry::norms(ug.delta.at(m), tm.budget(m).norm);
      if (project) EXPECT_LE(n[0], tm.budget(m).eps * (1 + 1e-5)) << "δ inside the ball";
      if (!project) EXPECT_GT(n[0], tm.budget(m).eps) << "6 steps of 0.01 leave a 0.05 ball";
    }
    const auto rc = uc.attack_batch(*t.cpu, t.x, t.y);
    const auto rg = ug.attack_batch(*t.gpu, t.xg, t.yg);
    EXPECT_TRUE(close_to_cpu(rg.logits, rc.logits, 1e-3, 1e-4)) << "logits at x + δ";
  }
}

TEST(CudaAttacks, RobustnessEvaluationMatchesTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto t = attack_twin();
  const std::vector<std::pair<models::AVInput<float>, Labels<float>>> cpu_batches{{t.x, t.y}, {t.x, t.y}};
  std::vector<std::pair<models::AVInput<float, Cuda>, Labels<float, Cuda>>> gpu_batches;
  for (const auto& [x, y] : cpu_batches) gpu_batches.push_back({models::to_device<Cuda>(x), to_device<Cuda>(y)});
  const Budget linf{.norm = Norm::linf, .eps = 0.05, .lo = 0.0, .hi = 1.0};
  const std::vector<NamedThreatModel> tms{{"joint", ThreatModel::joint(linf, linf)},
                                          {"audio", ThreatModel::audio_only(linf)}};
  EvaluateOptions o;
  o.quiet = true;
  o.min_eps_grid = {0.01, 0.05};
  const auto rc =
      evaluate_robustness(*t.cpu, cpu_batches,
                          {attack_spec(Pgd<float>(PgdOptions{.steps = 5})),
                           attack_spec(Apgd<float>(ApgdOptions{.steps = 5}, Objective<float>::of(LossKind::dlr)))},
                          tms, o);
  const auto rg = evaluate_robustness(
      *t.gpu, gpu_batches,
      {attack_spec(Pgd<float, Cuda>(PgdOptions{.steps = 5})),
       attack_spec(Apgd<float, Cuda>(ApgdOptions{.steps = 5}, Objective<float, Cuda>::of(LossKind::dlr)))},
      tms, o);
  ASSERT_EQ(rg.summaries.size(), rc.summaries.size());
  for (std::size_t i = 0; i < rc.summaries.size(); ++i) {
    SCOPED_TRACE(rc.summaries[i].attack + " " + rc.summaries[i].threat_model);
    EXPECT_EQ(rg.summaries[i].clean_correct, rc.summaries[i].clean_correct);
    // an example on the edge of breaking may fall either way on the two devices' rounding
    EXPECT_LE(std::abs(rg.summaries[i].robust_correct - rc.summaries[i].robust_correct), 1);
    EXPECT_EQ(rg.summaries[i].forward_passes, rc.summaries[i].forward_passes);
  }
}

}  // namespace
