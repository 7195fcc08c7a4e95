// A tiny late-fusion audio-visual classifier and synthetic data for the training tests: one
// Linear + tanh encoder per modality, LateFusion, a linear head — an AVClassifier small enough
// that a test trains it in well under a second, with every part callable one by one.
#pragma once

#include "avgrad/models/classifier.hpp"
#include "avgrad/models/fusion.hpp"
#include "avgrad/models/heads.hpp"
#include "avgrad/nn/linear.hpp"
#include "avgrad/train/trainer.hpp"

namespace avgrad::testing {

/// x (B, in) → tanh(Linear(x)) (B, dim).
template <Floating T> class TinyEncoder : public nn::Module<T> {
 public:
  TinyEncoder(std::int64_t in, std::int64_t dim, Generator& gen) : fc(in, dim, true, gen), dim_(dim) {
    this->register_module("fc", fc);
  }
  Tensor<T, Cpu> forward(const Tensor<T, Cpu>& x) { return tanh(fc(x)); }
  std::int64_t latent_dim() const { return dim_; }
  nn::Linear<T> fc;

 private:
  std::int64_t dim_;
};

template <Floating T> using TinyAV =
    models::AVClassifier<TinyEncoder<T>, TinyEncoder<T>, models::LateFusion<T>, models::ClassifierHead<T>>;

template <Floating T> std::unique_ptr<TinyAV<T>> tiny_av(std::int64_t audio_in, std::int64_t video_in,
                                                         std::int64_t classes, std::uint64_t seed,
                                                         std::int64_t dim = 8) {
  Generator gen(seed);
  auto a = std::make_unique<TinyEncoder<T>>(audio_in, dim, gen);
  auto v = std::make_unique<TinyEncoder<T>>(video_in, dim, gen);
  auto f = std::make_unique<models::LateFusion<T>>(
      models::LateFusionOptions{.audio_dim = dim, .video_dim = dim, .dim = dim}, gen);
  auto h = std::make_unique<models::ClassifierHead<T>>(
      models::ClassifierHeadOptions{.in_dim = dim, .num_classes = classes}, gen);
  return std::make_unique<TinyAV<T>>(std::move(a), std::move(v), std::move(f), std::move(h));
}

/// Gaussian class clusters: class c's audio mean is `sep`·e_c (padded dims 0), its video mean
/// `sep`·e_{c+1 mod K}; unit noise. Labels balanced (i mod K).
template <Floating T> train::TensorData<T> clusters(std::int64_t n, std::int64_t classes, std::int64_t audio_in,
                                                    std::int64_t video_in, double sep, std::uint64_t seed,
                                                    double noise = 1.0) {
  Generator gen(seed);
  auto a = randn<T>({n, audio_in}, gen);
  auto v = randn<T>({n, video_in}, gen);
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = i % classes;
    y[static_cast<std::size_t>(i)] = c;
    for (std::int64_t d = 0; d < audio_in; ++d)
      a.data()[i * audio_in + d] = static_cast<T>(noise * a.data()[i * audio_in + d] + (d == c % audio_in ? sep : 0.0));
    for (std::int64_t d = 0; d < video_in; ++d)
      v.data()[i * video_in + d] =
          static_cast<T>(noise * v.data()[i * video_in + d] + (d == (c + 1) % video_in ? sep : 0.0));
  }
  train::TensorData<T> data;
  data.audio = a;
  data.video = v;
  data.y.classes = from_vector<std::int64_t>(y);
  return data;
}

}  // namespace avgrad::testing
