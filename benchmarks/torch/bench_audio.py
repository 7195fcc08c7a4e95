#!/usr/bin/python3
"""torchaudio side of benchmark workload W3: the audio front-end, forward and forward+backward.

Run with Debian's python3 (torch 1.13, torchaudio 0.13.1), on the CPU:

    /usr/bin/python3 benchmarks/torch/bench_audio.py --threads 1
    /usr/bin/python3 benchmarks/torch/bench_audio.py --threads 2 --repeats 20 --json

Input: 16 clips x 10 s at 16 kHz, float32, gaussian noise of std 0.1 (numpy seed 0).

What is timed (wall clock, median over --repeats runs after --warmup untimed runs, in milliseconds
for all 16 clips together):

  W3_fbank_fwd / W3_fbank_fwdbwd
      torchaudio.compliance.kaldi.fbank(clip[None, :], num_mel_bins=128, frame_length=25,
      frame_shift=10, window_type="hanning", dither=0.0), everything else Kaldi's defaults
      (povey->hanning swapped, preemphasis 0.97, DC removal, 512-point FFT, snip_edges) -> (998, 128)
      per clip. kaldi.fbank only accepts one (channels, samples) waveform and uses one channel of it,
      so it is called clip by clip in a Python loop over the 16 clips; that is how torchaudio users
      must call it. fwdbwd: the 16 clips are rows of one (16, 160000) leaf that requires grad; the
      loop computes the 16 fbanks, then backward() of the sum of all their elements with respect
      to the waveform (the gradient is cleared between runs, not timed).

  W3_recipe_fwd / W3_recipe_fwdbwd  (the paper's reference front-end, batched)
      Spectrogram(n_fft=4096, win_length=1024, hop_length=400, power=1)   (center, reflect, periodic hann)
      -> MelScale(n_mels=64, sample_rate=16000, f_max=8000, n_stft=2049, norm="slaney", mel_scale="slaney")
      -> AmplitudeToDB(stype="power", top_db=80)
      on all 16 clips in one call -> (16, 1, 64, 401). The clips are passed as (16, 1, 160000):
      AmplitudeToDB's top_db clamp takes its max over the last three dimensions, so with a
      (16, 160000) batch it would clamp against the loudest clip of the whole batch; with the extra
      channel dimension it is per clip, as librosa's power_to_db on one clip is.
      fwdbwd: backward() of the sum of all outputs with respect to the (16, 1, 160000) waveform.

Output: a Markdown table, or with --json a list of
{"name": "torchaudio/W3_fbank_fwd", "ms": ..., "threads": ..., "repeats": ...} on stdout.
"""
import argparse

import numpy as np
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi
import torchaudio.transforms as AT

from timing import emit, timed

CLIPS, SECONDS, SR = 16, 10, 16000

FBANK_KW = dict(num_mel_bins=128, frame_length=25.0, frame_shift=10.0, window_type="hanning", dither=0.0,
                sample_frequency=float(SR))


def make_clips():
    rng = np.random.default_rng(0)
    return torch.from_numpy((rng.standard_normal((CLIPS, SECONDS * SR)) * 0.1).astype(np.float32))


def fbank_all(wave):
    return [kaldi.fbank(wave[i : i + 1], **FBANK_KW) for i in range(wave.shape[0])]


def make_recipe():
    return torch.nn.Sequential(
        AT.Spectrogram(n_fft=4096, win_length=1024, hop_length=400, power=1.0),
        AT.MelScale(n_mels=64, sample_rate=SR, f_max=8000.0, n_stft=4096 // 2 + 1, norm="slaney", mel_scale="slaney"),
        AT.AmplitudeToDB(stype="power", top_db=80.0),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per benchmark (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    clips = make_clips()

    # shapes, once, so a silent change of semantics shows up here rather than in the timings
    with torch.no_grad():
        fb = fbank_all(clips)
        assert len(fb) == CLIPS and tuple(fb[0].shape) == (998, 128), fb[0].shape
        recipe = make_recipe()
        out = recipe(clips[:, None, :])
        assert tuple(out.shape) == (CLIPS, 1, 64, 401), out.shape

    results = []

    def record(name, ms):
        results.append({"name": f"torchaudio/{name}", "ms": ms, "threads": args.threads, "repeats": args.repeats})

    # --- Kaldi fbank, clip by clip ---
    def fbank_fwd():
        with torch.no_grad():
            fbank_all(clips)

    record("W3_fbank_fwd", timed(fbank_fwd, args.warmup, args.repeats))

    wave = clips.clone().requires_grad_(True)

    def fbank_fwdbwd():
        loss = torch.stack([f.sum() for f in fbank_all(wave)]).sum()
        loss.backward()

    def clear():
        wave.grad = None

    record("W3_fbank_fwdbwd", timed(fbank_fwdbwd, args.warmup, args.repeats, clear))

    # --- reference recipe, batched ---
    batch = clips[:, None, :]

    def recipe_fwd():
        with torch.no_grad():
            recipe(batch)

    record("W3_recipe_fwd", timed(recipe_fwd, args.warmup, args.repeats))

    wave_b = batch.clone().requires_grad_(True)

    def recipe_fwdbwd():
        recipe(wave_b).sum().backward()

    def clear_b():
        wave_b.grad = None

    record("W3_recipe_fwdbwd", timed(recipe_fwdbwd, args.warmup, args.repeats, clear_b))

    emit(results, args.json,
         f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, {CLIPS} clips x {SECONDS} s "
         f"@ {SR} Hz, median of {args.repeats} runs",
         [("benchmark", lambda r: r["name"]), ("threads", lambda r: str(r["threads"])), ("ms", lambda r: f"{r['ms']:.2f}")])

if __name__ == "__main__":
    main()
