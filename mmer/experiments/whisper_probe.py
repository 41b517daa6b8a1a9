"""Checks and figures for the PyTorch Whisper tiny.en encoder (mmer.nets.whisper).

    python -m mmer.experiments.whisper_probe agree  [--clips 8]        # vs CTranslate2, max abs diff
    python -m mmer.experiments.whisper_probe timing [--clips 6]        # s/clip at T=3000 and T=800, 1 and 2 threads
    python -m mmer.experiments.whisper_probe probe  [--frames 800]     # linear probe on RAVDESS speech

Audio: /work/shared/data/ravdess-speech-audio (``--data``), 48 kHz, resampled to 16 kHz.
Weights: resnet/whisper-tiny.en-ct2 (``--model``; ``python -m mmer.weights fetch whisper_tiny_en``).

``probe``: logistic regression (standardised features, C=1, no tuning) on mean + std
pooled encoder states of one ``--frames`` window per clip (the states covering the clip's
audio, i.e. the first ceil(samples / 320); ``--pool all`` pools the whole window), trained
on actors 1-12 and tested on actors 13-16, 8 emotions, accuracy printed. Features are
cached in ``--cache`` (an .npz) so a rerun only fits.

Measured 2026-12-01 on the 2 shared cores (load average 2-3 from other jobs), OMP_NUM_THREADS=1:
agree, 8 Actor_01 clips: max abs diff 6.7e-4 vs CTranslate2 4.8.5 compute_type float32
(and "default", which on CPU turns the float16 file into float32 too). timing, 12 clips,
median s/clip (front end + encoder): 1 thread T=3000 0.75, T=800 0.19; 2 threads 1.13 and
0.34 (slower: the other core was busy). Cosine of mean+std pooled states T=3000 vs T=800:
0.994 mean (min 0.991) over the states covering the clip, 0.80 over whole windows.
probe: T=800 clip 62.9 %, T=800 all 62.5 %, T=600 clip 62.5 % (reference 64.6 %).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mmer.features.whisper import HOP_LENGTH, N_FRAMES, resample_to_16k, whisper_log_mel
from mmer.nets.whisper import WhisperEncoder, load_whisper_encoder

log = logging.getLogger("mmer.experiments.whisper_probe")


def load_16k(path: Path) -> np.ndarray:
    wave, sr = sf.read(path, dtype="float32", always_2d=True)
    return resample_to_16k(wave.mean(axis=1), sr)


def clips(data: Path, actors: range) -> list[Path]:
    return sorted(p for a in actors for p in (data / f"Actor_{a:02d}").glob("*.*")
                  if p.suffix in (".wav", ".flac"))


def n_valid(wave: np.ndarray, n_frames: int) -> int:
    """Encoder states that cover audio: frames are 2 x HOP_LENGTH samples apart."""
    return max(1, min(math.ceil(len(wave) / (2 * HOP_LENGTH)), math.ceil(n_frames / 2)))


@torch.no_grad()
def encode(enc: WhisperEncoder, wave: np.ndarray, n_frames: int) -> np.ndarray:
    """(N,) 16 kHz audio -> (ceil(n_frames / 2), 384) encoder states."""
    return enc(whisper_log_mel(wave, n_frames)[None])[0].numpy()


def cmd_agree(args: argparse.Namespace) -> None:
    import ctranslate2  # optional: only this check needs it
    torch.set_num_threads(1)
    enc = load_whisper_encoder(args.model)
    ref = {ct: ctranslate2.models.Whisper(str(args.model), device="cpu", compute_type=ct,
                                          intra_threads=1) for ct in ("float32", "default")}
    worst = {ct: 0.0 for ct in ref}
    for path in clips(args.data, range(1, 2))[: args.clips]:
        mel = whisper_log_mel(load_16k(path))[None]
        with torch.no_grad():
            got = enc(mel).numpy()
        for ct, model in ref.items():
            exp = np.asarray(model.encode(ctranslate2.StorageView.from_array(mel.numpy()),
                                          to_cpu=True))
            diff = float(np.abs(got - exp).max())
            worst[ct] = max(worst[ct], diff)
            log.info("%s compute_type=%s max abs diff %.3g (|ref| max %.2f)", path.name, ct,
                     diff, float(np.abs(exp).max()))
    for ct, diff in worst.items():
        print(f"agree: {args.clips} clips, T=3000, vs CTranslate2 compute_type={ct}: "
              f"max abs diff {diff:.3g}")


def pooled(states: np.ndarray) -> np.ndarray:
    return np.concatenate([states.mean(axis=0), states.std(axis=0)])


def cmd_timing(args: argparse.Namespace) -> None:
    enc = load_whisper_encoder(args.model)
    waves = [load_16k(p) for p in clips(args.data, range(1, 2))[: args.clips]]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for n_frames in (N_FRAMES, args.frames):
            encode(enc, waves[0], n_frames)  # warm-up
            times = []
            for w in waves:
                t0 = time.perf_counter()
                encode(enc, w, n_frames)
                times.append(time.perf_counter() - t0)
            print(f"timing: threads={threads} T={n_frames}: median {statistics.median(times):.3f} "
                  f"s/clip (front end + encoder, B=1, {len(waves)} clips), load avg "
                  f"{os.getloadavg()[0]:.2f}")
    torch.set_num_threads(1)
    cos_valid, cos_all = [], []
    for w in waves:
        long, short = encode(enc, w, N_FRAMES), encode(enc, w, args.frames)
        k = n_valid(w, args.frames)
        cos_valid.append(_cos(pooled(long[:k]), pooled(short[:k])))
        cos_all.append(_cos(pooled(long), pooled(short)))
    print(f"similarity T=3000 vs T={args.frames}, mean+std pooled, cosine over {len(waves)} "
          f"clips: states covering the clip min {min(cos_valid):.4f} mean "
          f"{np.mean(cos_valid):.4f}; whole windows min {min(cos_all):.4f} mean {np.mean(cos_all):.4f}")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def features(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, 768), emotion (n,), actor (n,)) for every clip, cached in args.cache."""
    if args.cache.is_file():
        z = np.load(args.cache)
        return z["x"], z["y"], z["actor"]
    from tqdm import tqdm
    torch.set_num_threads(args.threads)
    enc = load_whisper_encoder(args.model)
    xs, ys, actors = [], [], []
    for path in tqdm(clips(args.data, range(1, 17)), desc="encode"):
        w = load_16k(path)
        states = encode(enc, w, args.frames)
        k = n_valid(w, args.frames) if args.pool == "clip" else len(states)
        parts = path.stem.split("-")
        xs.append(pooled(states[:k]))
        ys.append(int(parts[2]))
        actors.append(int(parts[6]))
    x, y, actor = np.stack(xs), np.array(ys), np.array(actors)
    np.savez(args.cache, x=x, y=y, actor=actor)
    return x, y, actor


def cmd_probe(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    t0 = time.perf_counter()
    x, y, actor = features(args)
    train, test = actor <= 12, actor >= 13
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    clf.fit(x[train], y[train])
    acc = float((clf.predict(x[test]) == y[test]).mean())
    print(f"probe: T={args.frames} pool={args.pool}: train actors 1-12 ({train.sum()} clips), "
          f"test actors 13-16 ({test.sum()} clips): accuracy {100 * acc:.1f} % "
          f"({time.perf_counter() - t0:.0f} s)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("agree", "timing", "probe"))
    p.add_argument("--data", type=Path, default=Path("/work/shared/data/ravdess-speech-audio"))
    p.add_argument("--model", type=Path, default=Path("resnet/whisper-tiny.en-ct2"))
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=800)
    p.add_argument("--pool", choices=("clip", "all"), default="clip")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=None)
    args = p.parse_args(argv)
    if args.cache is None:
        args.cache = Path(f"/tmp/whisper_probe_T{args.frames}_{args.pool}.npz")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    {"agree": cmd_agree, "timing": cmd_timing, "probe": cmd_probe}[args.command](args)


if __name__ == "__main__":
    main()
