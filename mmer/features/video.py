"""Video snippets for the 3D CNN: face crop, resize, normalise.

Faces are found with OpenCV's bundled frontal-face Haar cascade, once per
snippet on the snippet's middle frame (downscaled to grey), and that box crops
every frame of the snippet: one box per snippet keeps the crop still within a
snippet, so the 3D CNN sees the face move and not the crop jitter, and it keeps
detection to S calls per clip. A snippet whose detection misses takes the last
good box; snippets before the first good box take that first box; a clip with
no face at all is centre-cropped. Misses are counted and returned, so the
feature cache can record them. ``video.face_detector`` picks the detector (haar, mtcnn:
:mod:`mmer.features.mtcnn`, none: centre square, no detection).

Training views (:func:`snippet_views`, ``features.train_views``): the same boxes crop
other frames, a seeded random frame within each of the L slices of each snippet's span
(temporal jitter), mirrored left-right for odd views, so augmentation survives the cache.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np
import torch

from mmer.config import VideoConfig
from mmer.errors import BadInput
from mmer.features.sampling import frame_grid, snippet_indices, timed_slices, timed_snippet_indices

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels
# A face detector: uint8 (H, W, 3) RGB frame -> box of the largest face, or None.
FaceDetector = Callable[[np.ndarray], "Box | None"]


class HaarFaceDetector:
    """Largest frontal face by OpenCV's Haar cascade, searched on a grey copy `detect_width` wide.

    Loading the cascade takes tens of milliseconds: build one and pass it to
    :func:`video_snippets` as `cropper` when looping over many clips.
    """

    def __init__(self, detect_width: int = 320, scale_factor: float = 1.15,
                 min_neighbors: int = 5) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"{path}: OpenCV could not load the Haar cascade")
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def __call__(self, frame: np.ndarray) -> Box | None:
        height, width = frame.shape[:2]
        scale = min(1.0, self.detect_width / width)
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        # Faces in these clips fill a good part of the frame; tiny candidates are noise.
        min_side = max(20, grey.shape[0] // 6)
        faces = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors,
                                              minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        return tuple(int(round(v / scale)) for v in (x, y, w, h))


def square_box(box: Box, margin: float, height: int, width: int) -> Box:
    """The square around `box` grown by `margin` x its longer side on every side, inside the frame.

    The square keeps the box centre where the frame allows, is shifted inside
    otherwise, and shrinks to the frame's shorter side if it must.
    """
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    side = max(1, min(side, height, width))
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 - side / 2))
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, side, side


def centre_box(height: int, width: int) -> Box:
    """The largest centred square of a `height` x `width` frame."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def snippet_boxes(frames: np.ndarray, indices: np.ndarray, cfg: VideoConfig,
                  cropper: FaceDetector | None = None) -> tuple[list[Box], int]:
    """One square crop box per snippet, and the number of snippets whose detection missed.

    frames: uint8 (T, H, W, 3); indices: (S, L) frame indices. With the detector "none"
    (``face_detector``) every box is the centre square and no detection runs.
    `cropper` is the detector to call; None builds a Haar one (mtcnn must be passed in).
    """
    height, width = frames.shape[1:3]
    n_snippets = indices.shape[0]
    name = cfg.face_detector
    if name == "none":
        return [centre_box(height, width)] * n_snippets, 0
    if cropper is None and name != "haar":
        raise BadInput(f"video.face_detector {name}: pass the detector as `cropper` "
                       "(mmer.features.mtcnn.make_detector)")
    detect = cropper if cropper is not None else HaarFaceDetector()
    found = [detect(frames[row[len(row) // 2]]) for row in indices]
    misses = sum(box is None for box in found)
    good = [box for box in found if box is not None]
    if not good:
        return [centre_box(height, width)] * n_snippets, misses
    boxes, last = [], good[0]
    for box in found:
        last = box if box is not None else last
        boxes.append(square_box(last, cfg.face_margin, height, width))
    return boxes, misses


def video_snippets(frames: np.ndarray, cfg: VideoConfig,
                   cropper: FaceDetector | None = None) -> tuple[torch.Tensor, int]:
    """Face-cropped, resized, normalised snippets of a clip.

    frames: uint8 (T, H, W, 3) RGB, T >= 1. Returns float32 (S, 3, L, size, size)
    with S = cfg.n_snippets, L = cfg.snippet_len, size = cfg.size, normalised
    per channel with cfg.mean / cfg.std, and the number of face misses (0..S).
    `cropper` replaces the default :class:`HaarFaceDetector`.
    """
    _check_frames(frames)
    indices = snippet_indices(frames.shape[0], cfg.n_snippets, cfg.snippet_len)
    boxes, misses = snippet_boxes(frames, indices, cfg, cropper)
    return crop_snippets(frames, indices, boxes, cfg), misses


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise BadInput(f"video_snippets: frames must be uint8 (T, H, W, 3), "
                       f"got {frames.dtype} {frames.shape}")


def jittered_indices(n_frames: int, n_snippets: int, snippet_len: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Temporal jitter: int64 (S, L) with point k drawn uniformly from the k-th of S*L equal
    slices of the clip (the slice whose centre :func:`snippet_indices` takes), so each
    snippet keeps its span and order; a slice shorter than a frame keeps its frame."""
    points = n_snippets * snippet_len
    k = np.arange(points, dtype=np.int64)
    lo = (k * n_frames) // points
    hi = np.maximum(((k + 1) * n_frames) // points, lo + 1)
    return rng.integers(lo, hi).astype(np.int64).reshape(n_snippets, snippet_len)


def snippet_views(frames: np.ndarray, cfg: VideoConfig, cropper: FaceDetector | None = None, *,
                  n_views: int = 0, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """The centred snippets of :func:`video_snippets` and `n_views` augmented views of
    every frame of a clip, uint8 (T, H, W, 3), taken as a constant-rate timeline
    (:func:`views_at` of :func:`snippet_plan` over ``pts = 0..T-1``)."""
    _check_frames(frames)
    count = frames.shape[0]
    plan = snippet_plan(np.arange(count, dtype=np.int64), count, cfg, n_views=n_views, seed=seed)
    return views_at(frames, np.arange(count), plan, cfg, cropper)


def snippet_plan(pts: np.ndarray, end: int, cfg: VideoConfig, *, n_views: int = 0,
                 seed: int = 0) -> list[np.ndarray]:
    """The timeline positions int64 (S, L) of the centred snippets, then of each of
    `n_views` views, for a clip whose sorted frame times are `pts` (T,) ending at `end`.

    A constant-rate timeline is taken by index (:func:`mmer.features.sampling.frame_grid`).
    Centred: :func:`mmer.features.sampling.timed_snippet_indices`. View v (1..n_views):
    a frame drawn from a generator seeded by (`seed`, v) in each time slice
    (:func:`mmer.features.sampling.timed_slices`); at a constant rate exactly
    :func:`jittered_indices`.
    """
    shape = (cfg.n_snippets, cfg.snippet_len)
    pts, end = frame_grid(pts, end)
    plan = [timed_snippet_indices(pts, end, *shape)]
    if n_views:
        lo, hi = timed_slices(pts, end, *shape)
        plan += [np.random.default_rng([seed, v]).integers(lo, hi).astype(np.int64).reshape(shape)
                 for v in range(1, n_views + 1)]
    return plan


def views_at(frames: np.ndarray, frame_index: np.ndarray, plan: list[np.ndarray], cfg: VideoConfig,
             cropper: FaceDetector | None = None) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Snippets of the kept frames: `frames` uint8 (U, H, W, 3) at timeline positions
    `frame_index` (U,) sorted, holding every position of `plan` (:func:`snippet_plan`).

    Every view is cropped with the centred view's face boxes (one detection pass) and
    mirrored left-right when its number is odd. Returns the centred (S, 3, L, size, size)
    float32, a list of the views of that shape, and the face misses.
    """
    _check_frames(frames)
    rows = [np.searchsorted(frame_index, positions) for positions in plan]
    boxes, misses = snippet_boxes(frames, rows[0], cfg, cropper)
    views = [crop_snippets(frames, r, boxes, cfg, flip=v % 2 == 1) for v, r in enumerate(rows[1:], 1)]
    return crop_snippets(frames, rows[0], boxes, cfg), views, misses


def crop_snippets(frames: np.ndarray, indices: np.ndarray, boxes: list[Box], cfg: VideoConfig,
                  *, flip: bool = False) -> torch.Tensor:
    """Frames (T, H, W, 3) at `indices` (S, L), cropped by the S `boxes`, resized to
    ``cfg.size``, mirrored when `flip`, normalised: float32 (S, 3, L, size, size)."""
    size = cfg.size
    out = np.empty((*indices.shape, size, size, 3), dtype=np.uint8)
    for s, (x0, y0, w, h) in enumerate(boxes):
        for j, t in enumerate(indices[s]):
            out[s, j] = cv2.resize(frames[t, y0:y0 + h, x0:x0 + w], (size, size),
                                   interpolation=cv2.INTER_AREA)
    mean = np.asarray(cfg.mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(cfg.std, np.float32) * 255.0)
    if flip:
        out = out[:, :, :, ::-1]
    normed = (out.astype(np.float32) - mean) * inv_std          # (S, L, H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(normed.transpose(0, 4, 1, 2, 3)))
