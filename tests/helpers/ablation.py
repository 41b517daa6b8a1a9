"""A tiny synthetic audio + AU set for the ablation, refit and speaker-norm runs, and the
ablation command line that trains on it."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from mmer.media.write import write_audio
from mmer.synth.render import EMOTION_CODES, Look, render_tone

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ravdess_av_aus.yaml"


EMOTIONS = (1, 3, 5, 6)


LEAK_OFFSET = 100.0   # added to the AUs of actors 1-2, the test actors of fold 0


MISSING = "03-01-06-01-02-01-04"   # a clip whose trial has no AU row


UNUSED = "01-01-03-01-01-01-09"    # an AU row of an actor without clips


def trial(emotion: int, statement: int, actor: int, modality: int) -> str:
    return f"{modality:02d}-01-{emotion:02d}-01-{statement:02d}-01-{actor:02d}"


def make_set(root: Path, actors: range, seed: int) -> tuple[Path, Path]:
    """Audio-only wavs under root/Actors and an AU table root/aus.csv (one row per AV clip)."""
    names = {code: name for name, code in EMOTION_CODES.items()}
    rng = np.random.default_rng(seed)
    rows = []
    for actor in actors:
        for e in EMOTIONS:
            for s in (1, 2):
                tone = render_tone(names[e], Look.of(actor, 0), sample_rate=16000, seconds=0.6,
                                   syllable_hz=3.0 + s, seed=actor * 100 + e * 10 + s)
                write_audio(root / "Actors" / f"Actor_{actor:02d}" / f"{trial(e, s, actor, 3)}.wav",
                            tone[0], 16000)
                aus = np.eye(len(EMOTIONS))[EMOTIONS.index(e)] * 2 + rng.normal(0, 0.3, len(EMOTIONS))
                aus = aus + (LEAK_OFFSET if actor in (1, 2) else 0.0)
                rows.append([trial(e, s, actor, 1), *aus.round(4)])
    rows = [r for r in rows if r[0] != "01" + MISSING[2:]] + [[UNUSED, 0.0, 0.0, 0.0, 0.0]]
    header = ["name"] + [f"AU{i:02d}_r" for i in range(1, len(EMOTIONS) + 1)]
    table = root / "aus.csv"
    table.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")
    return root / "Actors", table


def tiny_args(root: Path, audio: Path, table: Path, *extra: str) -> list[str]:
    """--config and --set arguments of a tiny run over `audio` + `table` under `root`;
    `extra` overrides come last, so they win."""
    overrides = [
        f"ravdess.root={audio}", f"visual.table={table}", "ravdess.actors=null",
        "split.n_folds=2", "split.n_val_actors=1", "audio.n_mels=16", "audio.n_segments=2",
        "audio.trim_db=null", "audio.clip_seconds=0.5", f"features.cache_dir={root / 'cache'}",
        "model.d_model=16", "model.n_heads=2", "model.embed_dim=8", "model.audio_width=4",
        "train.epochs=1", "train.batch_size=8", "train.warmup_epochs=0", f"train.runs_dir={root / 'runs'}",
        "eval.k=[3]", *extra,
    ]
    return ["--config", str(CONFIG), *[a for o in overrides for a in ("--set", o)]]


@contextmanager
def tiny_data(tmp_path_factory, name: str):
    """(root, audio folder, AU table) of a 4-actor synthetic set, torch on one thread meanwhile."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp(name)
    audio, table = make_set(root / "data", range(1, 5), seed=0)
    try:
        yield root, audio, table
    finally:
        torch.set_num_threads(before)
