"""Linear probes of the frozen 2D frame encoders on the 24 real MEAD clips.

    python -m mmer.experiments.mead_probe [--data ../shared/data/mead-video] [--weights resnet]
                               [--crop haar|centre] [--margin 0.2] [--size 112] [--frames 16]
                               [--speaker-norm]

Each clip (3 actors x 8 emotions, 256 x 256 face video) becomes one mmer snippet of
`--frames` frames spread evenly over the clip (:func:`mmer.features.video.video_snippets`:
one Haar face box, or the centre square, resized to `--size`, Kinetics-normalised), which
each encoder reads frame by frame through :mod:`mmer.nets.frame_encoders`. A clip's
vector is the mean and the standard deviation over its frames of

- ``mini_xception``: the pooled penultimate map (128) and the FER softmax (7);
- ``mobilenet_v2`` / ``efficientnet_lite0``: the pooled last map (1280).

Printed: leave-one-actor-out accuracy of a standardised logistic regression on those
vectors (train on 2 actors, test on the third; with `--speaker-norm` each actor's vectors
are first standardised with that actor's own clips, the transductive protocol of
``model.speaker_norm``), the mini-Xception zero-shot accuracy
(argmax of its mean softmax, FER classes renamed to MEAD's; MEAD's contempt has no FER
class, so at most 21/24), and the CPU seconds per frame of each encoder (preprocessing +
forward, one thread, model loading and decoding excluded). 3 actors are a sanity check,
not a benchmark: each fold's count is printed with the total.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmer.config import VideoConfig
from mmer.features.video import HaarFaceDetector, video_snippets
from mmer.inputs.speaker_norm import speaker_normalise
from mmer.media.decode import decode_clip
from mmer.nets.frame_encoders import build_frame_encoder, prepare_frames, unnormalise_snippets
from mmer.nets.mini_xception import FER_CLASSES

log = logging.getLogger("mmer.experiments.mead_probe")

MEAD_EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
FER_TO_MEAD = {"angry": "angry", "disgust": "disgusted", "fear": "fear", "happy": "happy",
               "sad": "sad", "surprise": "surprised", "neutral": "neutral"}
ENCODERS = ("mini_xception", "mobilenet_v2", "efficientnet_lite0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    p.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "mead-video")
    p.add_argument("--weights", type=Path, default=here / "resnet")
    p.add_argument("--crop", choices=("haar", "centre"), default="haar")
    p.add_argument("--margin", type=float, default=0.2, help="Haar box margin (fraction of its side)")
    p.add_argument("--size", type=int, default=112, help="snippet side in pixels")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--speaker-norm", action="store_true",
                   help="standardise each actor's clip vectors with that actor's clips (transductive)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def load_clips(args: argparse.Namespace) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray]:
    """RGB frames (L, 3, size, size) in [0, 1] per clip, emotion labels, actor names (sorted)."""
    cfg = VideoConfig(n_snippets=1, snippet_len=args.frames, size=args.size,
                      face_detector="haar" if args.crop == "haar" else "none", face_margin=args.margin)
    detector = HaarFaceDetector() if args.crop == "haar" else None
    paths = sorted(args.data.glob("*_front_*_level*_*.mp4"))
    if len(paths) != 24:
        log.warning("%s: %d clips (expected 24)", args.data, len(paths))
    frames, labels, actors = [], [], []
    for path in paths:
        actor, _, emotion = path.stem.split("_")[:3]
        snippets, misses = video_snippets(decode_clip(path, audio=False).frames, cfg, detector)
        if misses:
            log.warning("%s: no face found, centre crop", path.name)
        frames.append(unnormalise_snippets(snippets, cfg.mean, cfg.std)[0])
        labels.append(MEAD_EMOTIONS.index(emotion))
        actors.append(actor)
    return frames, np.array(labels), np.array(actors)


@torch.no_grad()
def frame_vectors(name: str, encoder: torch.nn.Module, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """One clip's (L, 3, H, W) frames -> per-frame ``vectors`` (L, D) (+ FER ``probs`` (L, 7))."""
    x = prepare_frames(frames, encoder.frame_input)
    if name == "mini_xception":
        out = encoder.expression(x)
        return {"vectors": torch.cat([out["features"], out["probs"]], dim=1), "probs": out["probs"]}
    return {"vectors": encoder(x).mean(dim=(2, 3))}


def encode_all(name: str, args: argparse.Namespace, clips: list[torch.Tensor]) -> tuple[list[dict], float]:
    """Per-clip outputs of encoder `name`, and its CPU seconds per frame."""
    encoder, info = build_frame_encoder(name, args.weights, pretrained="required")
    frame_vectors(name, encoder, clips[0][:2])  # warm-up: first-call allocations
    start, outs = time.perf_counter(), []
    for frames in clips:
        outs.append(frame_vectors(name, encoder, frames))
    per_frame = (time.perf_counter() - start) / sum(len(f) for f in clips)
    log.info("%s: %s from %s, %.4f s/frame", name, info["status"], info["file"], per_frame)
    return outs, per_frame


def clip_features(outs: list[dict]) -> np.ndarray:
    """(n_clips, 2 D): mean and std over frames of each clip's vectors."""
    return np.stack([torch.cat([o["vectors"].mean(0), o["vectors"].std(0)]).numpy() for o in outs])


def per_actor_standardised(x: np.ndarray, actors: np.ndarray) -> np.ndarray:
    """`x` with each actor's rows standardised per column on that actor's rows alone."""
    entries = [{"clip_id": str(i), "speaker": str(a), "x": torch.from_numpy(row)}
               for i, (row, a) in enumerate(zip(x, actors, strict=True))]
    return np.stack([e["x"].numpy() for e in speaker_normalise(entries, ["x"])])


def leave_one_actor_out(x: np.ndarray, y: np.ndarray, actors: np.ndarray) -> dict[str, int]:
    """Correct predictions per held-out actor of a standardised logistic regression."""
    correct = {}
    for actor in sorted(set(actors)):
        test = actors == actor
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
        model.fit(x[~test], y[~test])
        correct[str(actor)] = int((model.predict(x[test]) == y[test]).sum())
    return correct


def zero_shot(outs: list[dict], y: np.ndarray) -> int:
    """Clips whose mean FER softmax argmax, renamed to MEAD, is the clip's emotion."""
    names = [FER_TO_MEAD[FER_CLASSES[int(o["probs"].mean(0).argmax())]] for o in outs]
    return int(sum(MEAD_EMOTIONS.index(n) == label for n, label in zip(names, y, strict=True)))


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    args = parse_args(argv)
    clips, y, actors = load_clips(args)
    results: dict = {"crop": args.crop, "margin": args.margin, "size": args.size,
                     "frames": args.frames, "speaker_norm": args.speaker_norm,
                     "clips": len(clips), "encoders": {}}
    for name in ENCODERS:
        outs, per_frame = encode_all(name, args, clips)
        x = clip_features(outs)
        if args.speaker_norm:
            x = per_actor_standardised(x, actors)
        folds = leave_one_actor_out(x, y, actors)
        entry = {"loao_correct": sum(folds.values()), "loao_folds": folds, "s_per_frame": per_frame}
        if name == "mini_xception":
            entry["zero_shot_correct"] = zero_shot(outs, y)
        results["encoders"][name] = entry
        log.info("%s: leave-one-actor-out %d/%d (%.1f %%) folds %s%s", name, entry["loao_correct"],
                 len(y), 100 * entry["loao_correct"] / len(y), folds,
                 f"; zero-shot {entry['zero_shot_correct']}/{len(y)}" if "zero_shot_correct" in entry else "")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
