// study: the main job. Runs the whole study of ../shared/PAPER.md on AV-Digits — six models with
// identical encoders, FGSM/PGD ε sweeps under audio-only, video-only and joint attacks, latent
// density and convexity, the late-fusion model under mix-up, metric-guided mix-up and PGD-AT — and
// writes results/ (summary.md, study.json, CSV tables, SVG plots) with a reading of which findings
// hold here. A re-run reuses the feature cache and the checkpoints (--fresh retrains). The same
// study on the GPU is study_cuda (examples/cuda/study.cu).
//
//   build/release/examples/study --data build/release/av-digits --out results
#include "common/study_main.hpp"

int main(int argc, char** argv) {
  return examples::study_main(argc, argv, "study",
                              "The audio-visual robustness study on AV-Digits, end to end (docs/RESULTS.md)",
                              [](const avgrad::study::StudyConfig& c) { avgrad::study::run_study(c); });
}
