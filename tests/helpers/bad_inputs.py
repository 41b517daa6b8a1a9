"""The tiny RAVDESS config, tone and over-claiming wav shared by the bad-input tests."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import yaml

from mmer.media.write import write_audio


def _tone(seconds: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


def _overclaiming_wav(path: Path) -> Path:
    """A 16-bit wav whose header claims three times the samples the file holds."""
    write_audio(path, _tone(1.0), 16000)
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    data[at + 4:at + 8] = struct.pack("<I", 3 * size)
    path.write_bytes(bytes(data))
    return path


def _settings(root: Path, base: Path, **extra) -> dict:
    raw = {
        "name": "corpus", "dataset": "ravdess", "ravdess": {"root": str(root)},
        "split": {"n_folds": 3, "n_val_actors": 1},
        "video": {"n_snippets": 2, "snippet_len": 4, "size": 32, "face_detector": "none"},
        "audio": {"n_mels": 16, "n_segments": 2},
        "backbone": {"video": "r3d_18", "pretrained": "none", "weights_dir": str(base / "weights")},
        "features": {"cache_dir": str(base / "cache"), "batch_size": 2, "num_workers": 0, "device": "cpu"},
        "model": {"d_model": 16, "n_heads": 2, "embed_dim": 8, "audio_encoder": "resnet18",
                  "audio_width": 2},
        "train": {"epochs": 2, "batch_size": 4, "m_per_class": 2, "lr": 0.003, "warmup_epochs": 1,
                  "runs_dir": str(base / "runs"), "device": "cpu", "deterministic": True},
    }
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return raw


def _write_config(path: Path, raw: dict) -> Path:
    # Surrogate-escaped bytes (the odd folder name) survive as the raw bytes of the file.
    path.write_bytes(yaml.safe_dump(raw, allow_unicode=True).encode("utf-8", "surrogateescape"))
    return path
