// End-to-end check of examples/audioset_features on small synthetic AudioSet feature files.
//
//   audioset_e2e run <audioset_features> <work dir>        train → attack → metrics, check the results
//   audioset_e2e bad-input <audioset_features> <work dir>  missing, corrupt, wrong-shape files and bad options
//
// The files have the real layout and shapes (feat_a (N, 400, 64), feat_v (N, 10, 2048), labels
// (N, 527)) but few clips, and a learnable structure: four of the 527 classes occur, each raising
// its own band of mel bins and its own block of video dimensions above unit Gaussian noise.
// The training file uses the pre-batched layout (groups e_0, e_1), the test file the flat one.
#include <avgrad/data/hdf5.hpp>
#include <cstdint>
#include <random>

#include "run_check.hpp"

namespace {

using namespace examples_check;
using avgrad::Cpu;
using avgrad::Shape;
using avgrad::Tensor;
using F = avgrad::data::AudioSetFeatures;

constexpr std::int64_t kActive[] = {0, 7, 72, 300};  // the classes that occur

struct Part {
  Tensor<float, Cpu> audio, video, labels;
};

/// n clips; clip i has class kActive[i % 4] and, for every third clip, the next one as well.
Part make_part(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  Part p{Tensor<float, Cpu>::empty(Shape{n, F::kAudioFrames, F::kMelBins}),
         Tensor<float, Cpu>::empty(Shape{n, F::kVideoFrames, F::kVideoDim}),
         avgrad::zeros<float>(Shape{n, F::kClasses})};
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<int> on{static_cast<int>(i % 4)};
    if (i % 3 == 0) on.push_back(static_cast<int>((i + 1) % 4));
    for (int k : on) p.labels.data()[i * F::kClasses + kActive[k]] = 1.0f;
    float* a = p.audio.data() + i * F::kAudioFrames * F::kMelBins;
    for (std::int64_t t = 0; t < F::kAudioFrames; ++t)
      for (std::int64_t f = 0; f < F::kMelBins; ++f) {
        float v = noise(rng);
        for (int k : on) v += f / 16 == k ? 1.5f : 0.0f;
        a[t * F::kMelBins + f] = v;
      }
    float* v = p.video.data() + i * F::kVideoFrames * F::kVideoDim;
    for (std::int64_t t = 0; t < F::kVideoFrames; ++t)
      for (std::int64_t d = 0; d < F::kVideoDim; ++d) {
        float x = noise(rng);
        for (int k : on) x += d / 512 == k ? 1.5f : 0.0f;
        v[t * F::kVideoDim + d] = x;
      }
  }
  return p;
}

void write_flat(const fs::path& path, const Part& p) {
  avgrad::data::Hdf5Writer w(path);
  w.write("feat_a", p.audio);
  w.write("feat_v", p.video);
  w.write("labels", p.labels);
  w.commit();
}

void write_batched(const fs::path& path, const std::vector<Part>& parts) {
  avgrad::data::Hdf5Writer w(path);
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const std::string g = "e_" + std::to_string(k) + "/";
    w.write(g + "feat_a", parts[k].audio);
    w.write(g + "feat_v", parts[k].video);
    w.write(g + "labels", parts[k].labels);
  }
  w.commit();
}

int run_pipeline(const std::string& exe, const fs::path& work) {
  fs::create_directories(work);
  const fs::path train = work / "train.h5", test = work / "test.h5", out = work / "results";
  write_batched(train, {make_part(40, 1), make_part(24, 2)});
  write_flat(test, make_part(32, 3));
  fs::remove_all(out);
  const std::string cmd = quote(exe) + " --train " + quote(train.string()) + " --test " + quote(test.string()) +
                          " --model late --epochs 3 --batch 16 --lr 3e-3 --eps 0,0.5,2 --eps-video 2 --pgd-steps 3"
                          " --attack-examples 16 --convexity-pairs 100 --knn 5 --out " +
                          quote(out.string());
  const int rc = run(cmd, work / "run.log");
  expect(rc == 0, "audioset_features exited with " + std::to_string(rc) + "; output:\n" + read_text(work / "run.log"));
  if (rc != 0) return 1;
  expect_result_files(out);
  expect_latent_ranges(out);

  const std::string summary = read_text(out / "summary.json");
  const auto clean = json_numbers(summary, "clean_map");
  expect(clean.size() == 1 && in_unit_range(clean[0]), "summary.json: clean_map missing or outside [0, 1]");
  // Four classes with strong cues: a model that learnt anything ranks them well above chance
  // (the mAP of random scores is about the class frequency, here 0.25–0.45).
  if (clean.size() == 1) expect(clean[0] > 0.5, "summary.json: clean mAP " + std::to_string(clean[0]) + " <= 0.5");
  const auto robust = json_numbers(summary, "robust_map");
  expect(robust.size() == 3, "summary.json: expected robust mAP for audio, video and joint threat models, got " +
                                 std::to_string(robust.size()));
  for (double r : robust) expect(in_unit_range(r), "summary.json: robust mAP " + std::to_string(r) + " outside [0, 1]");
  // ε = 2 on unit-variance features under both modalities must cost the model something.
  if (robust.size() == 3 && clean.size() == 1)
    expect(robust[2] < clean[0], "joint PGD at the largest ε left mAP at " + std::to_string(robust[2]) +
                                     ", clean " + std::to_string(clean[0]));
  const std::string sweeps = read_text(out / "robustness.json");
  for (double m : json_numbers(sweeps, "robust_map"))
    expect(std::isnan(m) || in_unit_range(m), "robustness.json: robust_map outside [0, 1]");
  const std::string latent = read_text(out / "latent.json");
  expect(latent.find("\"multi_label\":true") != std::string::npos, "latent.json: not a multi-label report");
  for (const char* space : {"\"space\":\"audio\"", "\"space\":\"video\"", "\"space\":\"fused\""})
    expect(latent.find(space) != std::string::npos, std::string("latent.json: no ") + space + " entry");
  std::printf("%s\n", read_text(out / "summary.md").c_str());
  return failures ? 1 : 0;
}

int bad_inputs(const std::string& exe, const fs::path& work) {
  fs::create_directories(work);
  const std::string e = quote(exe);
  const fs::path missing = work / "no-such-file.h5";
  expect_clean_failure(e + " --train " + quote(missing.string()), work / "missing.log", {"--train", missing.string()});

  // A real file cut in half: HDF5 refuses it; the message names the file.
  const fs::path whole = work / "whole.h5", cut = work / "truncated.h5";
  write_flat(whole, make_part(4, 4));
  {
    const std::string bytes = read_text(whole);
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expect_clean_failure(e + " --train " + quote(cut.string()) + " --quiet", work / "truncated.log", {cut.string()});

  // Not HDF5 at all.
  const fs::path text = work / "notes.h5";
  std::ofstream(text) << "not an HDF5 file\n";
  expect_clean_failure(e + " --train " + quote(text.string()) + " --quiet", work / "text.log", {text.string()});

  // Right layout, wrong audio shape: the dataset and the expected shape are named.
  const fs::path wrong = work / "wrong_shape.h5";
  {
    avgrad::data::Hdf5Writer w(wrong);
    w.write("feat_a", avgrad::zeros<float>(Shape{4, 100, 64}));
    w.write("feat_v", avgrad::zeros<float>(Shape{4, F::kVideoFrames, F::kVideoDim}));
    w.write("labels", avgrad::zeros<float>(Shape{4, F::kClasses}));
    w.commit();
  }
  expect_clean_failure(e + " --train " + quote(wrong.string()) + " --quiet", work / "wrong.log",
                       {wrong.string(), "feat_a", "(N,400,64)"});

  // Non-positive sizes are refused by the option parser, naming the option.
  expect_clean_failure(e + " --train " + quote(whole.string()) + " --epochs 0", work / "epochs.log", {"--epochs"});
  expect_clean_failure(e + " --train " + quote(whole.string()) + " --batch -3", work / "batch.log", {"--batch"});
  expect_clean_failure(e + " --train " + quote(whole.string()) + " --model resnet", work / "model.log", {"--model"});
  // Too few clips to hold out a test set.
  expect_clean_failure(e + " --train " + quote(whole.string()) + " --limit 1 --quiet", work / "few.log",
                       {whole.string(), "too few"});
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: audioset_e2e run|bad-input <audioset_features> <work dir>\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
    if (mode == "run") return run_pipeline(argv[2], argv[3]);
    if (mode == "bad-input") return bad_inputs(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "audioset_e2e: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "audioset_e2e: unknown mode '%s'\n", mode.c_str());
  return 2;
}
