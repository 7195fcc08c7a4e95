// The audio front-end on the GPU against its CPU twin: framing with every padding rule and
// Kaldi's processing (dither drawn from the same Philox stream), the GEMM spectrum against
// the CPU's FFT, Kaldi fbank, MFCC and torchaudio's mel spectrogram, forward and backward;
// gradcheck in double of the device's own framing and spectrum; the same errors.
#include "cuda_twin.cuh"

using namespace avgrad;
using namespace avgrad::audio;
using avgrad::testing::close_to_cpu;
using avgrad::testing::expect_twin;
using avgrad::testing::twin_of;

namespace {

template <class T> Tensor<T, Cpu> waveform(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  auto x = rand<T>(s, g, -1, 1);
  x.requires_grad_();
  return x;
}

TEST(CudaAudio, FramesEveryPaddingAndProcessingStep) {
  AVGRAD_REQUIRE_GPU();
  const std::int64_t S = 203;
  auto win = window<float>(Window::povey, 25, Symmetry::symmetric);
  const FrameProcessing kaldi{0.0, 0, 0, true, 0.97};
  struct Case {
    const char* what;
    std::int64_t samples;
    Framing f;
    FrameProcessing p;
    bool windowed;
  };
  const Case cases[] = {
      {"kaldi, snip edges", S, kaldi_framing(S, 25, 10, true), kaldi, true},
      {"kaldi, mirrored edges", S, kaldi_framing(S, 25, 10, false), kaldi, true},
      {"stft, centred, reflect", S, stft_framing(S, 32, 8, 25, true, PadMode::reflect), {}, true},
      {"stft, centred, replicate", S, stft_framing(S, 32, 8, 25, true, PadMode::replicate), {}, false},
      {"stft, centred, constant", S, stft_framing(S, 32, 8, 25, true, PadMode::constant), {}, true},
      {"dither", S, kaldi_framing(S, 25, 10, true), {0.5, 77, 12, false, 0.0}, false},
      {"short signal mirrored many times", 7, kaldi_framing(7, 25, 10, false), kaldi, true},
  };
  for (const Case& c : cases) {
    expect_twin<float>(
        c.what, {waveform<float>({3, c.samples}, 1)},
        [&](const auto& v) { return frames(v[0], c.f, c.p, c.windowed ? win : Tensor<float, Cpu>()); },
        [&](const auto& v) { return frames(v[0], c.f, c.p, c.windowed ? win.to<Cuda>() : Tensor<float, Cuda>()); },
        1e-5, 1e-5);
  }
}

TEST(CudaAudio, LongFramesUseMoreSharedMemory) {
  AVGRAD_REQUIRE_GPU();
  // 16384 doubles per frame: 128 KiB, above the default 48 KiB per block
  const Framing f = kaldi_framing(40000, 16384, 8000, true);
  twin_of<double>(
      "16384-sample frames", {waveform<double>({2, 40000}, 3)},
      [&](const auto& v) {
        return frames(v[0], f, FrameProcessing{0, 0, 0, true, 0.9});
      },
      1e-10, 1e-10);
}

TEST(CudaAudio, FramesAtTheDefaultSharedMemoryEdge) {
  AVGRAD_REQUIRE_GPU();
  // 12200 floats: 48800 bytes of frame, under 48 KiB alone but not with block_sum2's buffers
  const Framing f = kaldi_framing(30000, 12200, 6000, true);
  twin_of<float>(
      "12200-sample frames with DC removal", {waveform<float>({2, 30000}, 11)},
      [&](const auto& v) {
        return frames(v[0], f, FrameProcessing{0, 0, 0, true, 0.97});
      },
      1e-5, 1e-5);
}

TEST(CudaAudio, GemmSpectrumMatchesTheCpuFft) {
  AVGRAD_REQUIRE_GPU();
  for (auto kind : {SpectrumKind::complex, SpectrumKind::power, SpectrumKind::magnitude})
    for (std::int64_t n : {16, 15, 512}) {
      const std::int64_t L = n == 512 ? 400 : 11, off = n == 512 ? 0 : 2;
      twin_of<float>(
          "spectrum n_fft " + std::to_string(n), {waveform<float>({2, 5, L}, 4 + static_cast<std::uint64_t>(n))},
          [&](const auto& v) { return spectrum(v[0], n, kind, off); }, 2e-4, 2e-4);
    }
}

TEST(CudaAudio, KaldiFbankMfccAndMelSpectrogram) {
  AVGRAD_REQUIRE_GPU();
  kaldi::FbankOptions fo;
  fo.num_mel_bins = 40;
  fo.use_energy = true;
  const kaldi::Fbank<float> cpu_fbank(fo);
  const kaldi::Fbank<float, Cuda> gpu_fbank(fo);
  // log features: relative agreement of the mel energies, absolute of their logs
  expect_twin<float>(
      "fbank with energy", {waveform<float>({2, 4000}, 5)}, [&](const auto& v) { return cpu_fbank(v[0]); },
      [&](const auto& v) { return gpu_fbank(v[0]); }, 1e-3, 1e-3);
  kaldi::MfccOptions mo;
  mo.fbank.snip_edges = false;
  expect_twin<float>(
      "mfcc, mirrored edges", {waveform<float>({2, 3000}, 6)},
      [&](const auto& v) { return kaldi::Mfcc<float>(mo)(v[0]); },
      [&](const auto& v) { return kaldi::Mfcc<float, Cuda>(mo)(v[0]); }, 1e-3, 1e-3);
  MelSpectrogramOptions ms;
  ms.n_mels = 64;
  expect_twin<float>(
      "mel spectrogram", {waveform<float>({2, 3200}, 7)},
      [&](const auto& v) { return MelSpectrogram<float>(ms)(v[0]); },
      [&](const auto& v) { return MelSpectrogram<float, Cuda>(ms)(v[0]); }, 1e-3, 1e-4);
}

TEST(CudaAudio, DitherDrawsTheCpusNoise) {
  AVGRAD_REQUIRE_GPU();
  kaldi::FbankOptions fo;
  fo.dither = 1.0;
  Generator gc(9), gg(9);
  auto x = waveform<float>({2, 2000}, 8).detach();
  EXPECT_TRUE(
      close_to_cpu(kaldi::Fbank<float, Cuda>(fo)(x.to<Cuda>(), &gg), kaldi::Fbank<float>(fo)(x, &gc), 1e-3, 1e-3));
  EXPECT_EQ(gg.offset(), gc.offset()) << "both advance the generator by the samples drawn";
}

TEST(CudaAudio, GradcheckFramesAndSpectrumOnTheDevice) {
  AVGRAD_REQUIRE_GPU();
  using Fn = std::function<Tensor<double, Cuda>(const std::vector<Tensor<double, Cuda>>&)>;
  Generator g(10);
  auto x = rand<double, Cuda>(Shape{2, 40}, g, -1, 1);
  x.requires_grad_();
  const Framing f = kaldi_framing(40, 12, 5, false);
  const FrameProcessing p{0.0, 0, 0, true, 0.97};
  const Fn fr = [&](const auto& v) { return frames(v[0], f, p); };
  const Fn spec = [&](const auto& v) { return spectrum(frames(v[0], f, p), 16, SpectrumKind::magnitude, 2); };
  for (const Fn* fn : {&fr, &spec}) {
    const auto r = gradcheck<double, Cuda>(*fn, {x}, {.max_elements = 40});
    EXPECT_TRUE(r.ok) << r.report;
  }
}

TEST(CudaAudio, BadInputIsRejectedAsOnTheCpu) {
  AVGRAD_REQUIRE_GPU();
  auto nan = from_vector<float>({0, 1, std::nanf(""), 2, 3, 4, 5, 6}, {1, 8}).to<Cuda>();
  EXPECT_THROW(frames(nan, kaldi_framing(8, 4, 2, true)), Error) << "a NaN sample";
  auto short_frames = zeros<float, Cuda>(Shape{3, 20});
  EXPECT_THROW(spectrum(short_frames, 16), Error) << "frames longer than n_fft";
  const Filterbank<float, Cuda> bank(zeros<float>(Shape{33, 4}));
  EXPECT_THROW(bank(zeros<float, Cuda>(Shape{2, 20})), Error) << "spectra of 20 bins for a bank of 33";
  auto wrong_window = zeros<float, Cuda>(Shape{7});
  EXPECT_THROW(frames(zeros<float, Cuda>(Shape{50}), kaldi_framing(50, 8, 4, true), {}, wrong_window), Error);
}

}  // namespace
