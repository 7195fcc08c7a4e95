// attack: evaluates a trained study model under FGSM and PGD ε sweeps — audio-only, video-only
// and joint threat models for a fused model, its own modality for a uni-modal one — and writes the
// sweeps as Markdown, CSV and JSON to <out>/attack-<model>[-<defense>].{md,csv,json}.
//
//   build/release/examples/attack --data build/release/av-digits --model late --eps 0,0.05,0.1,0.2
#include <avgrad/study/pipeline.hpp>

#include "common/cli.hpp"

int main(int argc, char** argv) {
  using namespace avgrad;
  examples::CommonOptions o;
  std::string model_name = "late", defense = "plain";

  CLI::App app{"Attack a trained study model over an ε grid under each threat model", "attack"};
  examples::add_io_options(app, o, "workspace folder holding checkpoints/ (from train or study); reports go here");
  examples::add_feature_options(app, o);
  examples::add_attack_options(app, o);
  app.add_option("--model", model_name, "audio-only, video-only, early, mid, late, super-late or bottleneck")
      ->capture_default_str();
  app.add_option("--defense", defense, "the defense the checkpoint was trained with")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  examples::apply(o);

  return examples::guarded("attack", [&] {
    const auto kind = study::parse_model_kind(model_name);
    const auto fs = study::load_features(o.data, std::filesystem::path(o.out) / "cache" / "features.safetensors",
                                         o.features, o.quiet);
    Generator init(0);
    study::with_model(kind, study::model_options(fs), init, [&](auto& model) {
      study::load_trained(model, kind, o.out, defense);
      const auto sweeps = study::robustness_sweeps(model, kind, fs.test, o.attack);
      const auto stem = std::filesystem::path(o.out) /
                        ("attack-" + std::string(study::model_name(kind)) + (defense == "plain" ? "" : "-" + defense));
      attacks::write_markdown(sweeps, stem.string() + ".md");
      attacks::write_csv(sweeps, stem.string() + ".csv");
      attacks::write_json(sweeps, stem.string() + ".json");
      std::fputs(attacks::to_markdown(sweeps).c_str(), stdout);
      std::printf("\nwritten: %s.{md,csv,json}\n", stem.string().c_str());
      return 0;
    });
  });
}
