// train_cnn: trains a small CNN on a synthetic image task it generates itself —
// 16×16 images of a noisy bar, classified by orientation (horizontal, vertical,
// two diagonals) — with cross entropy and SGD with momentum, and reports loss and
// accuracy on held-out images. Written against the op layer only: parameters
// are plain tensors, the update is a NoGradGuard loop, as a from-scratch model would be.
#include <avgrad/avgrad.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace avgrad;
using T = float;
using Tf = Tensor<T, Cpu>;

namespace {

constexpr std::int64_t kSize = 16, kClasses = 4;

struct Options {
  std::int64_t epochs = 6, batch = 64, train = 2048, test = 512;
  double lr = 0.05, momentum = 0.9, noise = 0.6;
  std::uint64_t seed = 1;
  bool check = false;
};

void usage() {
  std::puts(
      "usage: train_cnn [options]\n"
      "  --epochs N     passes over the training set (default 6)\n"
      "  --batch N      minibatch size (default 64)\n"
      "  --train N      training images (default 2048)\n"
      "  --test N       held-out images (default 512)\n"
      "  --lr X         SGD learning rate (default 0.05)\n"
      "  --momentum X   SGD momentum (default 0.9)\n"
      "  --noise X      pixel noise standard deviation (default 0.6)\n"
      "  --seed N       seed of data, initialisation and order (default 1)\n"
      "  --check        exit 1 unless the loss fell by half and test accuracy beats 0.8\n"
      "  --help         this text");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "train_cnn: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto number = [&](double lo) {
      const char* s = value();
      char* end = nullptr;
      double v = std::strtod(s, &end);
      if (end == s || *end != '\0' || !std::isfinite(v) || v < lo) {
        std::fprintf(stderr, "train_cnn: invalid value '%s' for %s\n", s, a.c_str());
        std::exit(2);
      }
      return v;
    };
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--epochs")
      o.epochs = static_cast<std::int64_t>(number(1));
    else if (a == "--batch")
      o.batch = static_cast<std::int64_t>(number(1));
    else if (a == "--train")
      o.train = static_cast<std::int64_t>(number(1));
    else if (a == "--test")
      o.test = static_cast<std::int64_t>(number(1));
    else if (a == "--lr")
      o.lr = number(0);
    else if (a == "--momentum")
      o.momentum = number(0);
    else if (a == "--noise")
      o.noise = number(0);
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(number(0));
    else if (a == "--check")
      o.check = true;
    else {
      std::fprintf(stderr, "train_cnn: unknown option %s (see --help)\n", a.c_str());
      std::exit(2);
    }
  }
  return o;
}

/// n images (n, 1, 16, 16) of one bar each plus noise, and labels (n): 0 horizontal,
/// 1 vertical, 2 diagonal "\", 3 diagonal "/". Bar position and length vary.
std::pair<Tf, Tensor<std::int64_t>> make_bars(std::int64_t n, double noise, Generator& gen) {
  auto x = randn<T>({n, 1, kSize, kSize}, gen, 0.0, noise);
  auto y = Tensor<std::int64_t>::empty({n});
  T* px = x.data();
  for (std::int64_t i = 0; i < n; ++i) {
    auto label = static_cast<std::int64_t>(gen.next_below(kClasses));
    auto pos = static_cast<std::int64_t>(2 + gen.next_below(kSize - 4));
    auto len = static_cast<std::int64_t>(8 + gen.next_below(kSize - 8 + 1));
    auto start = static_cast<std::int64_t>(gen.next_below(static_cast<std::uint64_t>(kSize - len + 1)));
    T* img = px + i * kSize * kSize;
    for (std::int64_t t = start; t < start + len; ++t) {
      std::int64_t r = 0, c = 0;
      switch (label) {
        case 0:
          r = pos, c = t;
          break;
        case 1:
          r = t, c = pos;
          break;
        case 2:
          r = t, c = t;
          break;
        default:
          r = t, c = kSize - 1 - t;
          break;
      }
      img[r * kSize + c] += 1.5f;
    }
    y.data()[i] = label;
  }
  return {x, y};
}

/// PyTorch's default init for conv/linear: U(±1/√fan_in) for weight and bias.
Tf uniform_init(const Shape& s, std::int64_t fan_in, Generator& gen) {
  const double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
  auto t = rand<T>(s, gen, -b, b);
  t.requires_grad_();
  return t;
}

struct Model {
  Tf w1, b1, g1, s1, w2, b2, g2, s2, wf, bf;  // conv, bias, bn scale, bn shift per block; fc
  Tf rm1, rv1, rm2, rv2;                      // running statistics (buffers)

  explicit Model(Generator& gen)
      : w1(uniform_init({8, 1, 3, 3}, 9, gen)),
        b1(uniform_init({8}, 9, gen)),
        g1(ones<T>({8})),
        s1(zeros<T>({8})),
        w2(uniform_init({16, 8, 3, 3}, 72, gen)),
        b2(uniform_init({16}, 72, gen)),
        g2(ones<T>({16})),
        s2(zeros<T>({16})),
        wf(uniform_init({kClasses, 16}, 16, gen)),
        bf(uniform_init({kClasses}, 16, gen)),
        rm1(zeros<T>({8})),
        rv1(ones<T>({8})),
        rm2(zeros<T>({16})),
        rv2(ones<T>({16})) {
    for (Tf* p : {&g1, &s1, &g2, &s2}) p->requires_grad_();
  }
  std::vector<Tf*> parameters() { return {&w1, &b1, &g1, &s1, &w2, &b2, &g2, &s2, &wf, &bf}; }

  /// x (B, 1, 16, 16) → logits (B, K).
  Tf forward(const Tf& x, bool training) {
    auto h = relu(batch_norm(conv2d(x, w1, b1, 1, 1), g1, s1, rm1, rv1, training));  // (B, 8, 16, 16)
    h = max_pool2d(h, 2);                                                            // (B, 8, 8, 8)
    h = relu(batch_norm(conv2d(h, w2, b2, 1, 1), g2, s2, rm2, rv2, training));       // (B, 16, 8, 8)
    h = max_pool2d(h, 2);                                                            // (B, 16, 4, 4)
    return linear(global_avg_pool(h), wf, bf);                                       // (B, K)
  }
};

double accuracy(const Tf& logits, const Tensor<std::int64_t>& y) {
  auto pred = argmax(logits, 1);
  std::int64_t hit = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) hit += pred.data()[i] == y.data()[i];
  return static_cast<double>(hit) / static_cast<double>(y.numel());
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  Generator gen(opt.seed);
  auto [xtr, ytr] = make_bars(opt.train, opt.noise, gen);
  auto [xte, yte] = make_bars(opt.test, opt.noise, gen);
  Model model(gen);
  std::vector<Tf> velocity;
  for (Tf* p : model.parameters()) velocity.push_back(zeros_like(*p));

  const std::int64_t steps_per_epoch = opt.train / opt.batch;
  const std::int64_t total = steps_per_epoch * opt.epochs;
  std::printf("train_cnn: %lld train / %lld test images of %lldx%lld, %lld classes, %lld steps of batch %lld\n",
              static_cast<long long>(opt.train), static_cast<long long>(opt.test), static_cast<long long>(kSize),
              static_cast<long long>(kSize), static_cast<long long>(kClasses), static_cast<long long>(total),
              static_cast<long long>(opt.batch));
  ProgressBar bar("train", total, opt.batch);
  double first_loss = -1, recent = 0;
  std::int64_t step = 0;
  for (std::int64_t epoch = 0; epoch < opt.epochs; ++epoch) {
    // a fresh order each epoch: a seeded Fisher–Yates shuffle
    std::vector<std::int64_t> order(static_cast<std::size_t>(opt.train));
    for (std::int64_t i = 0; i < opt.train; ++i) order[static_cast<std::size_t>(i)] = i;
    for (std::int64_t i = opt.train - 1; i > 0; --i)
      std::swap(order[static_cast<std::size_t>(i)], order[gen.next_below(static_cast<std::uint64_t>(i + 1))]);
    auto perm = from_vector<std::int64_t>(order);
    for (std::int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      auto idx = perm.narrow(0, s * opt.batch, opt.batch).contiguous();
      auto xb = index_select(xtr, 0, idx);  // (B, 1, 16, 16)
      auto yb = index_select(ytr, 0, idx);  // (B)
      auto logits = model.forward(xb, true);
      auto loss = cross_entropy(logits, yb);
      for (Tf* p : model.parameters()) p->zero_grad();
      loss.backward();
      {
        NoGradGuard no_grad;  // v ← μv + g; p ← p − lr·v
        auto params = model.parameters();
        for (std::size_t k = 0; k < params.size(); ++k) {
          mul_(velocity[k], opt.momentum);
          add_(velocity[k], params[k]->grad());
          add_(*params[k], velocity[k], -opt.lr);
        }
      }
      const double l = loss.item();
      if (first_loss < 0) first_loss = l;
      recent = step == 0 ? l : 0.9 * recent + 0.1 * l;
      bar.update(step + 1, {{"loss", recent}, {"acc", accuracy(logits, yb)}});
    }
  }

  double test_acc = 0, test_loss = 0;
  {
    NoGradGuard no_grad;
    auto logits = model.forward(xte, false);
    test_acc = accuracy(logits, yte);
    test_loss = cross_entropy(logits, yte).item();
  }
  std::printf(
      "\n| metric | value |\n| --- | --- |\n| first train loss | %.4f |\n| final train loss (EMA) | %.4f |\n"
      "| test loss | %.4f |\n| test accuracy | %.4f |\n| chance accuracy | %.4f |\n| wall time | %s |\n",
      first_loss, recent, test_loss, test_acc, 1.0 / kClasses, ProgressBar::format_duration(bar.seconds()).c_str());
  if (opt.check && !(recent < 0.5 * first_loss && test_acc > 0.8)) {
    std::fprintf(stderr, "train_cnn: check failed: loss %.4f -> %.4f, test accuracy %.4f\n", first_loss, recent,
                 test_acc);
    return 1;
  }
  return 0;
}
