// train: trains one of the study's models on AV-Digits features under one defense and saves its
// weights where `attack` and `metrics` (and the study) look for them:
// <out>/checkpoints/<model>[-<defense>].safetensors. A checkpoint trained with the same data,
// options, model and defense is reused unless --fresh.
//
//   build/release/examples/train --data build/release/av-digits --model mid --epochs 12
//   build/release/examples/train --data build/release/av-digits --model late --defense guided
#include <avgrad/study/pipeline.hpp>

#include "common/cli.hpp"

int main(int argc, char** argv) {
  using namespace avgrad;
  examples::CommonOptions o;
  std::string model_name = "late", defense = "plain";
  study::DefenseConfig dc;
  bool fresh = false;

  CLI::App app{"Train one study model (any fusion, any defense) on AV-Digits features", "train"};
  examples::add_io_options(app, o, "workspace folder: checkpoints/ and the feature cache cache/ go here");
  examples::add_feature_options(app, o);
  examples::add_train_options(app, o);
  app.add_option("--model", model_name, "audio-only, video-only, early, mid, late or bottleneck")
      ->capture_default_str();
  app.add_option("--defense", defense, std::string("defense: ") + study::kDefenseNames)->capture_default_str();
  app.add_option("--def-eps", dc.eps_audio, "adversarial training's ε on the audio features")->capture_default_str();
  app.add_option("--video-ratio", o.attack.video_ratio, "ε_video / ε_audio for adversarial training")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--at-steps", dc.at_steps, "PGD-AT / TRADES inner steps")->capture_default_str();
  app.add_option("--heldout", dc.heldout, "validation examples guided mix-up measures its metrics on")
      ->capture_default_str();
  app.add_flag("--fresh", fresh, "retrain even when a matching checkpoint exists");
  CLI11_PARSE(app, argc, argv);
  examples::apply(o);

  return examples::guarded("train", [&] {
    const auto kind = study::parse_model_kind(model_name);
    AVGRAD_CHECK(study::is_trained(kind), "train",
                 "the super-late model is not trained: it averages the audio-only and video-only models, so train "
                 "those two");
    const auto fs = study::load_features(o.data, std::filesystem::path(o.out) / "cache" / "features.safetensors",
                                         o.features, o.quiet);
    Generator init(o.train.seed);
    default_generator().manual_seed(o.train.seed);
    study::with_model(kind, study::model_options(fs), init, [&](auto& model) {
      using M = std::remove_cvref_t<decltype(model)>;
      const auto path = study::checkpoint_path(o.out, kind, defense);
      auto d = study::make_defense<M>(defense, dc, o.attack, fs);
      const auto r =
          study::train_or_load(model, kind, *d, defense, fs, o.train, path,
                               study::training_fingerprint(fs, o.train, kind, defense, dc, o.attack), !fresh);
      std::printf("%s under %s: %s\n", r.model.c_str(), r.defense.c_str(),
                  r.reused ? "reused the matching checkpoint" : "trained");
      std::printf("  test accuracy %.4f (validation %.4f)\n", r.test_accuracy, r.val_accuracy);
      if (study::is_fused(kind))
        std::printf("  with the video missing %.4f, with the audio missing %.4f\n", r.test_accuracy_audio_only,
                    r.test_accuracy_video_only);
      std::printf("  cost: %s, %lld steps, %lld forward / %lld backward passes (%lld backward examples)\n",
                  ProgressBar::format_duration(r.cost.seconds).c_str(), static_cast<long long>(r.steps),
                  static_cast<long long>(r.cost.forward_passes), static_cast<long long>(r.cost.backward_passes),
                  static_cast<long long>(r.cost.backward_examples));
      std::printf("  weights: %s\n", path.string().c_str());
      return 0;
    });
  });
}
