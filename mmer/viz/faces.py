"""Contact sheet of face crops: does the face detector crop faces?

    python -m mmer.faces CLIP [CLIP ...] --out sheet.png [--detector mtcnn|haar]
        [--frames 6] [--margin 0.2] [--weights resnet]      (:mod:`mmer.cli.faces`)

One row per clip, `--frames` evenly spaced frames per row. Each tile is the square crop
the video features would take (:func:`mmer.features.video.square_box` of the detected
box, grown by `--margin`), or a grey "no face" tile where the detector found none.
Built on matplotlib's Figure API (no pyplot, no global backend), written atomically.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from mmer.features.mtcnn import make_detector
from mmer.features.video import FaceDetector, square_box
from mmer.io import atomic_path
from mmer.media.decode import decode_clip

log = logging.getLogger(__name__)
TILE = 128  # pixels per tile side


def evenly_spaced(n_frames: int, count: int) -> np.ndarray:
    """`count` frame indices spread from the first to the last of `n_frames` (fewer if short)."""
    return np.unique(np.linspace(0, n_frames - 1, min(count, n_frames)).round().astype(np.int64))


def face_tiles(frames: np.ndarray, indices: np.ndarray, detect: FaceDetector,
               margin: float, size: int = TILE) -> list[np.ndarray | None]:
    """uint8 (size, size, 3) square face crops of frames (T, H, W, 3) at `indices`; None
    where `detect` finds no face."""
    height, width = frames.shape[1:3]
    tiles: list[np.ndarray | None] = []
    for i in indices:
        box = detect(frames[i])
        if box is None:
            tiles.append(None)
            continue
        x, y, w, h = square_box(box, margin, height, width)
        tiles.append(cv2.resize(frames[i, y:y + h, x:x + w], (size, size),
                                interpolation=cv2.INTER_AREA))
    return tiles


def contact_sheet(rows: Sequence[tuple[str, list[np.ndarray | None]]], title: str) -> Figure:
    """A Figure with one row of tiles per (label, tiles); None tiles read "no face"."""
    n_cols = max(len(tiles) for _, tiles in rows)
    fig = Figure(figsize=(1.6 * n_cols, 1.75 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, tiles) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles):
                ax.set_axis_off()
            elif tiles[c] is None:
                ax.imshow(np.full((TILE, TILE, 3), 200, np.uint8))
                ax.text(TILE / 2, TILE / 2, "no face", ha="center", va="center", color="darkred")
            else:
                ax.imshow(tiles[c])
        axes[r][0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_sheet(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path`, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def clip_row(clip: Path, detect: FaceDetector, *, frames: int, margin: float
             ) -> tuple[str, list[np.ndarray | None]]:
    """The sheet row of one clip: its stem and `frames` evenly spaced tiles."""
    decoded = decode_clip(clip, audio=False).frames
    tiles = face_tiles(decoded, evenly_spaced(len(decoded), frames), detect, margin)
    log.info("%s: %d of %d tiles with a face", clip.name, sum(t is not None for t in tiles), len(tiles))
    return clip.stem, tiles


__all__ = ["clip_row", "contact_sheet", "evenly_spaced", "face_tiles", "make_detector", "save_sheet"]
