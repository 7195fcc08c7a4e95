// End-to-end check of examples/kinetics_sounds on a few tiny clips made with the ffmpeg CLI.
//
//   kinetics_e2e run <kinetics_sounds> <work dir>        decode → train → attack → metrics, check the results
//   kinetics_e2e bad-input <kinetics_sounds> <work dir>  missing CSV, missing and corrupt clips, bad options
//
// Three classes, named in the CSV, four one-second clips each. A class has its own grey level and
// its own tone, so either modality alone can tell the classes apart; clips within a class differ
// a little in both. Without the ffmpeg CLI the driver cannot make clips and fails saying so.
#include <cstdint>
#include <string>

#include "run_check.hpp"

namespace {

using namespace examples_check;

const char* const kNames[] = {"low", "mid", "high"};

bool make_clip(const fs::path& path, int cls, int variant) {
  const int grey = 0x20 + 0x60 * cls + 0x08 * variant;  // at most 0xf8
  const int freq = (cls == 0 ? 300 : cls == 1 ? 1200 : 4000) + 40 * variant;
  char colour[16];
  std::snprintf(colour, sizeof colour, "0x%02x%02x%02x", grey, grey, grey);
  const std::string cmd = std::string("ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i color=c=") + colour +
                          ":size=32x24:rate=8 -f lavfi -i sine=frequency=" + std::to_string(freq) +
                          ":sample_rate=16000 -t 1 -c:v mjpeg -q:v 3 -c:a pcm_s16le " + quote(path.string()) +
                          " > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0 && fs::is_regular_file(path);
}

/// Writes clips/ and labels.csv (header, names as labels) under `work`.
bool make_clips(const fs::path& work) {
  fs::create_directories(work / "clips");
  std::string csv = "file,label\n";
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 4; ++v) {
      const std::string name = std::string(kNames[c]) + "_" + std::to_string(v) + ".avi";
      if (!make_clip(work / "clips" / name, c, v)) {
        std::fprintf(stderr, "FAILED: the ffmpeg CLI could not write %s (is ffmpeg on PATH?)\n", name.c_str());
        return false;
      }
      csv += name + "," + kNames[c] + "\n";
    }
  std::ofstream(work / "clips" / "labels.csv") << csv;
  return true;
}

std::string base_command(const std::string& exe, const fs::path& work, const fs::path& csv, int mel_bins = 16) {
  return quote(exe) + " --csv " + quote(csv.string()) + " --classes low,mid,high --fps 4 --size 16 --seconds 1" +
         " --mel-bins " + std::to_string(mel_bins) + " --quiet --out " + quote((work / "results").string());
}

int run_pipeline(const std::string& exe, const fs::path& work) {
  fs::remove_all(work);
  if (!make_clips(work)) return 1;
  const fs::path out = work / "results";
  const std::string cmd = base_command(exe, work, work / "clips" / "labels.csv") +
                          " --model late --epochs 15 --batch 3 --lr 3e-3 --eps 0,0.5,2 --eps-video 0.25"
                          " --pgd-steps 3 --convexity-pairs 100 --knn 3 --test-fraction 0.25";
  const int rc = run(cmd, work / "run.log");
  expect(rc == 0, "kinetics_sounds exited with " + std::to_string(rc) + "; output:\n" + read_text(work / "run.log"));
  if (rc != 0) return 1;
  expect_result_files(out);
  expect_latent_ranges(out);
  expect(fs::is_regular_file(out / "cache" / "train" / "manifest.json"), "no clip cache under " + (out / "cache").string());

  const std::string summary = read_text(out / "summary.json");
  const auto clean = json_numbers(summary, "clean_accuracy");
  expect(clean.size() == 1 && in_unit_range(clean[0]), "summary.json: clean_accuracy missing or outside [0, 1]");
  // Either modality alone separates the classes: a trained model beats chance (1/3) on the test clips.
  if (clean.size() == 1) expect(clean[0] > 0.5, "summary.json: clean accuracy " + std::to_string(clean[0]) + " <= 0.5");
  const auto robust = json_numbers(summary, "robust_accuracy");
  expect(robust.size() == 3, "summary.json: expected robust accuracy for audio, video and joint threat models, got " +
                                 std::to_string(robust.size()));
  // An example counts as robust only when it is clean-correct, so robust accuracy never exceeds clean.
  for (double r : robust)
    expect(in_unit_range(r) && (clean.empty() || r <= clean[0] + 1e-9),
           "summary.json: robust accuracy " + std::to_string(r) + " outside [0, clean accuracy]");
  expect(json_numbers(summary, "num_classes") == std::vector<double>{3}, "summary.json: num_classes is not 3");
  expect(json_numbers(summary, "test_examples") == std::vector<double>{3}, "summary.json: expected 3 test clips");
  const std::string latent = read_text(out / "latent.json");
  expect(latent.find("\"multi_label\":false") != std::string::npos, "latent.json: not a single-label report");
  for (const char* space : {"\"space\":\"audio\"", "\"space\":\"video\"", "\"space\":\"fused\""})
    expect(latent.find(space) != std::string::npos, std::string("latent.json: no ") + space + " entry");
  std::printf("%s\n", read_text(out / "summary.md").c_str());

  // A second run reuses the cache instead of decoding again (its manifest stays as it was).
  const auto stamp = fs::last_write_time(out / "cache" / "train" / "manifest.json");
  const int rc2 = run(base_command(exe, work, work / "clips" / "labels.csv") +
                          " --model audio --epochs 1 --batch 8 --pgd-steps 1 --convexity-pairs 10 --knn 2",
                      work / "rerun.log");
  expect(rc2 == 0, "the audio-only rerun exited with " + std::to_string(rc2) + "; output:\n" + read_text(work / "rerun.log"));
  expect(fs::last_write_time(out / "cache" / "train" / "manifest.json") == stamp, "the rerun decoded the clips again");
  expect(json_numbers(read_text(out / "summary.json"), "robust_accuracy").size() == 1,
         "an audio-only model is attacked under the audio threat model only");
  return failures ? 1 : 0;
}

int bad_inputs(const std::string& exe, const fs::path& work) {
  fs::remove_all(work);
  if (!make_clips(work)) return 1;
  const fs::path clips = work / "clips";

  const fs::path missing_csv = work / "no-such-labels.csv";
  expect_clean_failure(base_command(exe, work, missing_csv), work / "missing_csv.log", {"--csv", missing_csv.string()});

  // A row whose clip does not exist: the CSV line and the file are named.
  const fs::path gap = clips / "gap.csv";
  std::ofstream(gap) << "file,label\nlow_0.avi,low\nnot_there.avi,mid\n";
  expect_clean_failure(base_command(exe, work, gap), work / "gap.log", {"gap.csv:3", "not_there.avi"});

  // A clip that is not a video at all.
  std::ofstream(clips / "garbage.avi") << "this is not a video file\n";
  const fs::path corrupt = clips / "corrupt.csv";
  std::ofstream(corrupt) << "file,label\nlow_0.avi,low\ngarbage.avi,mid\n";
  expect_clean_failure(base_command(exe, work, corrupt), work / "corrupt.log", {"corrupt.csv:3", "garbage.avi"});

  // A label that is not one of --classes.
  const fs::path unknown = clips / "unknown.csv";
  std::ofstream(unknown) << "file,label\nlow_0.avi,loud\n";
  expect_clean_failure(base_command(exe, work, unknown), work / "unknown.log", {"unknown.csv:2", "loud"});

  // Non-positive sizes, refused by the option parser naming the option.
  const fs::path csv = clips / "labels.csv";
  expect_clean_failure(base_command(exe, work, csv) + " --size 0", work / "size.log", {"--size"});
  expect_clean_failure(base_command(exe, work, csv) + " --epochs -1", work / "epochs.log", {"--epochs"});
  expect_clean_failure(base_command(exe, work, csv) + " --eps 0.2,0.1", work / "eps.log", {"--eps"});
  // Early fusion cuts each video frame into rows of the fbank's bins: 16² pixels into 12 bins fails.
  expect_clean_failure(base_command(exe, work, csv, 12) + " --model early --epochs 1", work / "early.log",
                       {"EarlyFusion", "multiple"});
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: kinetics_e2e run|bad-input <kinetics_sounds> <work dir>\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
    if (mode == "run") return run_pipeline(argv[2], argv[3]);
    if (mode == "bad-input") return bad_inputs(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kinetics_e2e: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "kinetics_e2e: unknown mode '%s'\n", mode.c_str());
  return 2;
}
