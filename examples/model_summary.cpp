// model_summary: builds every encoder, fusion, head and study model of avgrad::models at its
// default (full) size and prints a table of configurations and parameter counts — with
// --shapes also the output shape of one forward pass on a batch of one, measured, not stated.
// --tree NAME prints one component's module tree with per-module parameter counts.
#include <avgrad/models/study.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace avgrad;
using namespace avgrad::models;
using T = float;
using Tf = Tensor<T>;

namespace {

struct Row {
  std::string group, name, input, config, output;
  std::int64_t params = 0;
  double seconds = 0;
};

/// One component: how to build it, what it is fed, and how to run it on that input.
struct Entry {
  std::string group, name, input;
  std::function<Row(bool shapes, bool tree)> make;
};

Tf input(const Shape& s) {
  Generator g(1);
  return randn<T>(s, g);
}

/// A row for module m; with `shapes`, run(m) is timed once in eval mode without gradients.
template <class M, class Run> Row measure(const std::string& group, const std::string& name, const std::string& in,
                                          M& m, Run&& run, bool shapes, bool tree) {
  Row r{group, name, in, m.describe(), "", m.parameter_count(), 0};
  if (tree) std::printf("%s", m.summary().c_str());
  if (shapes) {
    m.eval();
    NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    Tf y = run(m);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.output = y.shape().str();
  }
  return r;
}

template <class M> Entry encoder(std::string group, std::string name, Shape in) {
  return {group, name, in.str(), [=](bool shapes, bool tree) {
            auto m = std::make_unique<M>();
            return measure(
                group, name, in.str(), *m, [&](M& e) { return e.forward(input(in)); }, shapes, tree);
          }};
}

template <class F> Entry fusion(std::string name, Shape a, Shape v, std::function<std::unique_ptr<F>()> build) {
  const std::string in = a.str() + " + " + v.str();
  return {"fusion", name, in, [=](bool shapes, bool tree) {
            auto m = build();
            return measure(
                "fusion", name, in, *m, [&](F& f) { return f.fuse(input(a), input(v)); }, shapes, tree);
          }};
}

template <class H, class O> Entry head(std::string name, Shape in, O options) {
  return {"head", name, in.str(), [=](bool shapes, bool tree) {
            auto m = std::make_unique<H>(options);
            return measure(
                "head", name, in.str(), *m, [&](H& h) { return h.forward(input(in)); }, shapes, tree);
          }};
}

template <class Factory> Entry study_model(std::string name, Factory build) {
  const study::StudyOptions o;
  const Shape a{1, o.audio_frames, o.num_bins()}, v{1, o.video_frames, o.video_dim};
  const std::string in = a.str() + " + " + v.str();
  return {"study model", name, in, [=](bool shapes, bool tree) {
            auto m = build(o);
            using M = typename decltype(m)::element_type;
            return measure(
                "study model", name, in, *m,
                [&](M& x) {
                  return x.forward({input(a), input(v)}).logits;
                },
                shapes, tree);
          }};
}

std::vector<Entry> catalogue() {
  std::vector<Entry> e;
  e.push_back(encoder<CnnStem10C5P<T>>("audio encoder", "CnnStem10C5P", {1, 400, 64}));
  e.push_back(encoder<CnnTransformer<T>>("audio encoder", "CnnTransformer", {1, 400, 64}));
  e.push_back(encoder<ConvStackEncoder<T>>("audio encoder", "ConvStackEncoder", {1, 100, 128}));
  e.push_back(encoder<ResNetAudio<T>>("audio encoder", "ResNetAudio", {1, 400, 64}));
  e.push_back(encoder<PannsCnn<T>>("audio encoder", "PannsCnn", {1, 400, 64}));
  e.push_back(encoder<AstEncoder<T>>("audio encoder", "AstEncoder", {1, 1024, 128}));
  e.push_back(encoder<FrameCnnEncoder<T>>("video encoder", "FrameCnnEncoder", {1, 3, 8, 112, 112}));
  e.push_back(encoder<Conv3dEncoder<T>>("video encoder", "Conv3dEncoder", {1, 3, 8, 32, 32}));
  e.push_back(encoder<R2Plus1dEncoder<T>>("video encoder", "R2Plus1dEncoder", {1, 3, 16, 112, 112}));
  e.push_back(encoder<VivitEncoder<T>>("video encoder", "VivitEncoder", {1, 3, 16, 224, 224}));
  e.push_back(encoder<FeatureSequenceEncoder<T>>("video encoder", "FeatureSequenceEncoder", {1, 10, 2048}));
  e.push_back(fusion<LateFusion<T>>("LateFusion", {1, 100, 1024}, {1, 10, 1024},
                                    [] { return std::make_unique<LateFusion<T>>(LateFusionOptions{}); }));
  e.push_back(fusion<GatedFusion<T>>("GatedFusion", {1, 512}, {1, 512},
                                     [] { return std::make_unique<GatedFusion<T>>(GatedFusionOptions{}); }));
  e.push_back(fusion<MidFusion<T>>("MidFusion", {1, 100, 1024}, {1, 10, 2048},
                                   [] { return std::make_unique<MidFusion<T>>(MidFusionOptions{}); }));
  e.push_back(fusion<EarlyFusion<CnnTransformer<T>>>("EarlyFusion<CnnTransformer>", {1, 400, 64}, {1, 10, 2048}, [] {
    return std::make_unique<EarlyFusion<CnnTransformer<T>>>(EarlyFusionOptions{},
                                                            std::make_unique<CnnTransformer<T>>());
  }));
  e.push_back(fusion<BottleneckFusion<T>>("BottleneckFusion", {1, 196, 768}, {1, 392, 768}, [] {
    return std::make_unique<BottleneckFusion<T>>(BottleneckFusionOptions{});
  }));
  e.push_back(head<ClassifierHead<T>>("ClassifierHead", {1, 512}, ClassifierHeadOptions{}));
  e.push_back(head<AttentionPoolHead<T>>("AttentionPoolHead", {1, 10, 1024}, AttentionPoolHeadOptions{}));
  e.push_back(study_model("study::audio_model", [](const auto& o) { return study::audio_model<T>(o); }));
  e.push_back(study_model("study::video_model", [](const auto& o) { return study::video_model<T>(o); }));
  e.push_back(study_model("study::early_fusion", [](const auto& o) { return study::early_fusion<T>(o); }));
  e.push_back(study_model("study::mid_fusion", [](const auto& o) { return study::mid_fusion<T>(o); }));
  e.push_back(study_model("study::late_fusion", [](const auto& o) { return study::late_fusion<T>(o); }));
  e.push_back(study_model("study::super_late", [](const auto& o) { return study::super_late<T>(o); }));
  return e;
}

std::string with_commas(std::int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

void usage() {
  std::puts(
      "usage: model_summary [options]\n"
      "  --shapes      also run one forward pass per component (batch 1, eval mode) and report\n"
      "                the output shape and its time; takes a minute at these sizes\n"
      "  --csv         CSV instead of a Markdown table\n"
      "  --tree NAME   print NAME's module tree (e.g. --tree LateFusion) and nothing else\n"
      "  --help        this text");
}

}  // namespace

int main(int argc, char** argv) {
  bool shapes = false, csv = false;
  std::string tree;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shapes") {
      shapes = true;
    } else if (a == "--csv") {
      csv = true;
    } else if (a == "--tree" && i + 1 < argc) {
      tree = argv[++i];
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "model_summary: unknown option '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }
  const auto entries = catalogue();
  if (!tree.empty()) {
    for (const auto& e : entries)
      if (e.name == tree) {
        e.make(false, true);
        return 0;
      }
    std::fprintf(stderr, "model_summary: no component named '%s'; names:", tree.c_str());
    for (const auto& e : entries) std::fprintf(stderr, " %s", e.name.c_str());
    std::fputc('\n', stderr);
    return 2;
  }
  if (csv)
    std::printf("group,name,input,configuration,parameters%s\n", shapes ? ",output,seconds" : "");
  else
    std::printf("| Group | Component | Input | Default configuration | Parameters |%s\n|---|---|---|---|---:|%s\n",
                shapes ? " Output | Forward (s) |" : "", shapes ? "---|---:|" : "");
  for (const auto& e : entries) {
    try {
      const Row r = e.make(shapes, false);
      if (csv)
        std::printf("%s,%s,\"%s\",\"%s\",%lld", r.group.c_str(), r.name.c_str(), r.input.c_str(), r.config.c_str(),
                    static_cast<long long>(r.params));
      else
        std::printf("| %s | `%s` | %s | %s | %s |", r.group.c_str(), r.name.c_str(), r.input.c_str(), r.config.c_str(),
                    with_commas(r.params).c_str());
      if (shapes) std::printf(csv ? ",\"%s\",%.2f" : " %s | %.2f |", r.output.c_str(), r.seconds);
      std::putchar('\n');
      std::fflush(stdout);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "model_summary: %s failed: %s\n", e.name.c_str(), ex.what());
      return 1;
    }
  }
  return 0;
}
