// train_transformer: a small transformer classifier on a synthetic sequence task
// it generates itself — which of the tokens 0–3 occurs most often in a random
// sequence (ties to the smallest) — trained with AdamW and a warm-up + cosine
// schedule, checkpointed every N steps and resumable. --verify-resume trains
// straight through and again with a save/restore half-way into fresh objects,
// and fails unless both runs end with bit-identical parameters and losses.
#include <avgrad/avgrad.hpp>
#include <avgrad/optim/adam.hpp>
#include <avgrad/optim/clip.hpp>
#include <avgrad/optim/schedule.hpp>
#include <avgrad/train/checkpoint.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

using namespace avgrad;
using Tf = Tensor<float, Cpu>;
using Ti = Tensor<std::int64_t, Cpu>;

namespace {

constexpr std::int64_t kVocab = 8, kClasses = 4;

struct Options {
  std::int64_t steps = 400, batch = 32, length = 16, dim = 32, heads = 4, layers = 2, save_every = 100;
  double lr = 3e-3, weight_decay = 0.01, dropout = 0.1;
  std::uint64_t seed = 7;
  std::string checkpoint;  // empty: no checkpoints
  bool resume = false, verify_resume = false, check = false, quiet = false;
};

void usage() {
  std::puts(
      "usage: train_transformer [options]\n"
      "  --steps N          optimizer steps (default 400)\n"
      "  --batch N          sequences per step (default 32)\n"
      "  --length N         tokens per sequence (default 16)\n"
      "  --dim N            model width (default 32); --heads N (4); --layers N (2)\n"
      "  --lr X             peak AdamW learning rate (default 3e-3); --weight-decay X (0.01)\n"
      "  --dropout X        dropout in the encoder (default 0.1)\n"
      "  --seed N           seed of initialisation, data and dropout (default 7)\n"
      "  --checkpoint PATH  write a checkpoint there every --save-every N steps (default 100)\n"
      "  --resume           continue from --checkpoint when it exists\n"
      "  --verify-resume    train straight and with a save/restore half-way; exit 1 unless identical\n"
      "  --check            exit 1 unless held-out accuracy beats 0.7 (chance is 0.25)\n"
      "  --quiet            no progress bar\n"
      "  --help             this text");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "train_transformer: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto number = [&](double lo) {
      const std::string s = value();
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0' || !std::isfinite(v) || v < lo) {
        std::fprintf(stderr, "train_transformer: invalid value '%s' for %s\n", s.c_str(), a.c_str());
        std::exit(2);
      }
      return v;
    };
    auto integer = [&](double lo) { return static_cast<std::int64_t>(number(lo)); };
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--steps")
      o.steps = integer(1);
    else if (a == "--batch")
      o.batch = integer(1);
    else if (a == "--length")
      o.length = integer(2);
    else if (a == "--dim")
      o.dim = integer(1);
    else if (a == "--heads")
      o.heads = integer(1);
    else if (a == "--layers")
      o.layers = integer(1);
    else if (a == "--save-every")
      o.save_every = integer(1);
    else if (a == "--lr")
      o.lr = number(0);
    else if (a == "--weight-decay")
      o.weight_decay = number(0);
    else if (a == "--dropout")
      o.dropout = number(0);
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(number(0));
    else if (a == "--checkpoint")
      o.checkpoint = value();
    else if (a == "--resume")
      o.resume = true;
    else if (a == "--verify-resume")
      o.verify_resume = true;
    else if (a == "--check")
      o.check = true;
    else if (a == "--quiet")
      o.quiet = true;
    else {
      std::fprintf(stderr, "train_transformer: unknown option %s (see --help)\n", a.c_str());
      std::exit(2);
    }
  }
  if (o.dim % o.heads != 0 || o.dropout > 1) {
    std::fprintf(stderr, "train_transformer: --dim must be a multiple of --heads and --dropout at most 1\n");
    std::exit(2);
  }
  return o;
}

/// n random sequences (n, L) of tokens in [0, 8) and labels (n): the token among
/// 0–3 with the highest count, ties going to the smallest.
std::pair<Ti, Ti> make_batch(std::int64_t n, std::int64_t length, Generator& gen) {
  auto x = randint<std::int64_t>(0, kVocab, {n, length}, gen);
  auto y = Ti::empty({n});
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t count[kClasses] = {0, 0, 0, 0};
    for (std::int64_t t = 0; t < length; ++t) {
      const std::int64_t v = x.data()[i * length + t];
      if (v < kClasses) ++count[v];
    }
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < kClasses; ++c)
      if (count[c] > count[best]) best = c;
    y.data()[i] = best;
  }
  return {x, y};
}

/// tokens (B, L) → embedding + CLS + learned positions → encoder → CLS state → logits (B, K).
struct Classifier : nn::Module<float> {
  nn::Embedding<float> embed;
  nn::ClassToken<float> cls;
  nn::LearnedPositionalEmbedding<float> pos;
  nn::TransformerEncoder<float> encoder;
  nn::Linear<float> head;

  Classifier(const Options& o, Generator& init)
      : embed(kVocab, o.dim, {}, init),
        cls(o.dim, init),
        pos(o.length + 1, o.dim, init),
        encoder(
            [&] {
              return std::make_unique<nn::TransformerEncoderLayer<float>>(
                  o.dim, o.heads, 2 * o.dim, o.dropout, nn::TransformerActivation::gelu, 1e-5, true, init);
            },
            o.layers, std::make_unique<nn::LayerNorm<float>>(Shape{o.dim})),
        head(o.dim, kClasses, true, init) {
    register_module("embed", embed);
    register_module("cls", cls);
    register_module("pos", pos);
    register_module("encoder", encoder);
    register_module("head", head);
  }
  std::string describe() const override { return "Classifier"; }

  Tf forward(const Ti& tokens) {
    auto h = pos(cls(embed(tokens)));  // (B, L+1, D)
    h = encoder(h);                    // (B, L+1, D)
    return head(h.select(1, 0));       // (B, K)
  }
};

/// Everything a run owns; rebuilt from scratch to prove a resume needs only the file.
struct Run {
  Generator gen;
  Classifier model;
  optim::AdamW<float> opt;
  optim::LinearWarmupCosineDecayLR sched;
  std::int64_t step = 0;
  std::vector<float> losses;

  Run(const Options& o, std::uint64_t seed)
      : gen(seed),
        model(o, gen),
        opt(model.named_trainable_parameters(), optim::AdamWOptions{.lr = o.lr, .weight_decay = o.weight_decay}),
        sched(opt, {.warmup_steps = o.steps / 10, .total_steps = o.steps, .start_factor = 0.0, .end_factor = 0.01}) {
    model.encoder.set_generator(&gen);
  }
  CheckpointParts<float> parts() { return {&model, &opt, &sched, &gen, step, {}}; }
  void save(const std::filesystem::path& p) { save_checkpoint(p, parts()); }
  void load(const std::filesystem::path& p) {
    auto pp = parts();
    load_checkpoint(p, pp);
    step = pp.step;
  }

  /// One AdamW step on a fresh batch; returns the loss.
  float train_step(const Options& o) {
    model.train();
    auto [x, y] = make_batch(o.batch, o.length, gen);
    auto loss = cross_entropy(model.forward(x), y);
    opt.zero_grad();
    loss.backward();
    optim::clip_grad_norm_(opt.parameters(), 1.0);
    opt.step();
    sched.step();
    ++step;
    losses.push_back(loss.item());
    return losses.back();
  }

  double accuracy(const Options& o, std::uint64_t seed) {
    model.eval();
    NoGradGuard ng;
    Generator g(seed);
    auto [x, y] = make_batch(512, o.length, g);
    auto pred = argmax(model.forward(x), 1);
    std::int64_t hit = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) hit += pred.data()[i] == y.data()[i];
    return static_cast<double>(hit) / static_cast<double>(y.numel());
  }
};

void train(Run& run, const Options& o, std::int64_t until, ProgressBar* bar) {
  while (run.step < until) {
    float loss = run.train_step(o);
    if (!o.checkpoint.empty() && run.step % o.save_every == 0) run.save(o.checkpoint);
    if (bar) bar->update(run.step, {{"loss", loss}, {"lr", run.opt.param_groups()[0].lr.value_or(0)}});
  }
}

bool identical(Run& a, Run& b) {
  auto pa = a.model.named_parameters(), pb = b.model.named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    auto va = pa[i].second.to_vector(), vb = pb[i].second.to_vector();
    if (std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) != 0) {
      std::fprintf(stderr, "train_transformer: parameter %s differs after resume\n", pa[i].first.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  try {
    if (o.verify_resume) {
      // Straight run, then a run that saves half-way, is destroyed, and continues
      // in freshly built objects (seeded differently) from the file alone.
      const auto path =
          std::filesystem::temp_directory_path() / ("avgrad_resume_" + std::to_string(::getpid()) + ".safetensors");
      Options quiet = o;
      quiet.checkpoint.clear();
      Run straight(quiet, o.seed);
      train(straight, quiet, o.steps, nullptr);
      std::vector<float> first_half;
      {
        Run half(quiet, o.seed);
        train(half, quiet, o.steps / 2, nullptr);
        half.save(path);
        first_half = half.losses;
      }
      Run resumed(quiet, o.seed + 12345);
      resumed.load(path);
      train(resumed, quiet, o.steps, nullptr);
      std::filesystem::remove(path);
      first_half.insert(first_half.end(), resumed.losses.begin(), resumed.losses.end());
      const bool same_losses = first_half == straight.losses;
      const bool same = same_losses && identical(straight, resumed);
      std::printf("verify-resume: %lld steps, checkpoint at step %lld: losses %s, parameters %s\n",
                  static_cast<long long>(o.steps), static_cast<long long>(o.steps / 2),
                  same_losses ? "identical" : "DIFFER", same ? "bit-identical" : "DIFFER");
      return same ? 0 : 1;
    }

    Run run(o, o.seed);
    std::printf("train_transformer: %s", run.model.summary().c_str());
    if (o.resume && !o.checkpoint.empty() && std::filesystem::exists(o.checkpoint)) {
      run.load(o.checkpoint);
      std::printf("resumed from %s at step %lld\n", o.checkpoint.c_str(), static_cast<long long>(run.step));
    }
    ProgressBar bar("train", o.steps, o.batch);
    train(run, o, o.steps, o.quiet ? nullptr : &bar);
    const double acc = run.accuracy(o, o.seed + 1000);
    std::printf(
        "\n| metric | value |\n| --- | --- |\n| steps | %lld |\n| final train loss | %.4f |\n"
        "| held-out accuracy | %.4f |\n| chance accuracy | %.4f |\n| wall time | %s |\n",
        static_cast<long long>(run.step), run.losses.empty() ? 0.0 : run.losses.back(), acc, 1.0 / kClasses,
        ProgressBar::format_duration(bar.seconds()).c_str());
    if (o.check && acc <= 0.7) {
      std::fprintf(stderr, "train_transformer: check failed: held-out accuracy %.4f\n", acc);
      return 1;
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "train_transformer: %s\n", e.what());
    return 1;
  }
  return 0;
}
