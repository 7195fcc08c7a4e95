// study_cuda: the study program (examples/study.cpp) with every model trained and attacked on
// the GPU — the same options, outputs and checkpoints (device-neutral: either build reuses the
// other's). Features are computed on the host. Needs a visible CUDA device.
//
//   build/release/examples/study_cuda --data build/release/av-digits --out results-gpu
#include "avgrad/cuda.cuh"
#include "common/study_main.hpp"

int main(int argc, char** argv) {
  return examples::study_main(argc, argv, "study_cuda",
                              "The audio-visual robustness study on AV-Digits, models on the GPU (docs/RESULTS.md)",
                              [](const avgrad::study::StudyConfig& c) {
                                AVGRAD_CHECK(avgrad::cuda::available(), "CUDA",
                                             "no CUDA device is visible; the CPU build of the study is `study`");
                                avgrad::study::run_study<avgrad::Cuda>(c);
                              });
}
