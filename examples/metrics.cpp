// metrics: the latent-space report of a trained study model — per class and latent space (audio,
// video, fused) the kNN density statistics and the convexity of ../shared/PAPER.md — written as
// Markdown, CSV and JSON to <out>/latent-<model>[-<defense>].{md,csv,json}.
//
//   build/release/examples/metrics --data build/release/av-digits --model mid
#include <avgrad/study/pipeline.hpp>

#include "common/cli.hpp"

int main(int argc, char** argv) {
  using namespace avgrad;
  examples::CommonOptions o;
  std::string model_name = "late", defense = "plain", split = "test";
  metrics::LatentReportOptions lo;

  CLI::App app{"Latent density and convexity report of a trained study model", "metrics"};
  examples::add_io_options(app, o, "workspace folder holding checkpoints/ (from train or study); reports go here");
  examples::add_feature_options(app, o);
  app.add_option("--model", model_name, "audio-only, video-only, early, mid, late, super-late or bottleneck")
      ->capture_default_str();
  app.add_option("--defense", defense, "the defense the checkpoint was trained with")->capture_default_str();
  app.add_option("--split", split, "the examples whose latents are measured")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val", "test"}));
  app.add_option("--k", lo.density.k, "neighbours of the kNN density statistics")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--pairs", lo.convexity.pairs, "interpolated pairs per class for convexity")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  CLI11_PARSE(app, argc, argv);
  examples::apply(o);
  lo.quiet = o.quiet;

  return examples::guarded("metrics", [&] {
    const auto kind = study::parse_model_kind(model_name);
    const auto fs = study::load_features(o.data, std::filesystem::path(o.out) / "cache" / "features.safetensors",
                                         o.features, o.quiet);
    const auto& data = split == "train" ? fs.train : split == "val" ? fs.val : fs.test;
    Generator init(0);
    study::with_model(kind, study::model_options(fs), init, [&](auto& model) {
      study::load_trained(model, kind, o.out, defense);
      const auto report = metrics::latent_report(model, study::batches_of(data, 100), lo);
      const auto stem = std::filesystem::path(o.out) /
                        ("latent-" + std::string(study::model_name(kind)) + (defense == "plain" ? "" : "-" + defense));
      metrics::write_markdown(report, stem.string() + ".md");
      metrics::write_csv(report, stem.string() + ".csv");
      metrics::write_json(report, stem.string() + ".json");
      std::fputs(metrics::to_markdown(report).c_str(), stdout);
      std::printf("\nwritten: %s.{md,csv,json}\n", stem.string().c_str());
      return 0;
    });
  });
}
