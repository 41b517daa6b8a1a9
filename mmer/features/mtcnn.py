"""MTCNN face detection (Zhang et al. 2016) on CPU, a drop-in for ``HaarFaceDetector``.

Three stages, each on every frame of a batch at once:

1. P-net slides a 12 px window (2 px step) over an image pyramid: the frame rescaled by
   12 / min_face, then again by `scale_factor` (0.709, so the area halves) until the
   shorter side is under 12 px. Windows scoring over ``thresholds[0]`` become boxes;
   NMS per scale (IoU 0.5), then over all scales (``nms_thresholds[0]``), then the
   P-net offsets move each box's edges and the box is squared.
2. R-net scores a 24x24 crop of every box: threshold, NMS, offsets, square again.
3. O-net scores a 48x48 crop: threshold, offsets, 5 landmarks, and a last NMS whose
   overlap is the intersection over the smaller box ("min"), which removes a small box
   inside a big one.

Input is what the rest of mmer decodes: uint8 (H, W, 3) **RGB**, the order the original
MATLAB/Caffe models were trained on (the networks barely react to a red/blue swap on
frontal faces: O-net scores of MEAD faces stay above 0.99 either way). Pixels are
normalised as (x - 127.5) / 128 by :func:`mmer.nets.mtcnn.normalise`.

Boxes inside this module are float (N, 4) rows (x1, y1, x2, y2) in frame pixels, x2 and
y2 exclusive (width = x2 - x1). The returned :data:`~mmer.features.video.Box` is the
(x, y, width, height) integer box of the Haar detector, clipped to the frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from mmer.errors import BadInput
from mmer.features.video import Box, FaceDetector, HaarFaceDetector
from mmer.nets.mtcnn import ONet, PNet, RNet, load_mtcnn, normalise

PNET_STRIDE, PNET_CELL = 2, 12
# Crops per R-net/O-net forward pass: bounds memory on frames with many candidates.
_CHUNK = 1024


@dataclass(frozen=True)
class Detection:
    """One face: `box` (x, y, w, h) in frame pixels, O-net `score`, and `landmarks`
    float32 (5, 2) as (x, y) of left eye, right eye, nose, left and right mouth corner."""

    box: Box
    score: float
    landmarks: np.ndarray


def box_overlap(box: np.ndarray, others: np.ndarray, mode: str = "union") -> np.ndarray:
    """Overlap of one box (4,) with boxes (N, 4): IoU (`mode` "union") or intersection
    over the smaller area ("min"). Returns (N,)."""
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    if mode == "union":
        denom = area + areas - inter
    elif mode == "min":
        denom = np.minimum(area, areas)
    else:
        raise BadInput(f"unknown overlap mode {mode!r}; choices: union, min")
    return inter / np.maximum(denom, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float,
        mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression. boxes (N, 4), scores (N,) -> indices (K,) of the
    kept boxes, best first: a box is dropped when its overlap with a better kept box is
    above `threshold`."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_overlap(boxes[best], boxes[order], mode) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def apply_offsets(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Box regression: (N, 4) boxes with (N, 4) offsets (dx1, dy1, dx2, dy2) in units of
    each box's width (x) and height (y), added to its edges. Returns (N, 4)."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    return boxes + offsets * size


def to_square(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) boxes -> squares of side max(width, height) with the same centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None] / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def pyramid_scales(height: int, width: int, min_face: float, factor: float) -> list[float]:
    """Scales at which a `min_face`-pixel face fills P-net's 12 px window, then smaller by
    `factor` each, while the rescaled shorter side stays at least 12 px."""
    scale, scales = PNET_CELL / min_face, []
    while min(height, width) * scale >= PNET_CELL:
        scales.append(scale)
        scale *= factor
    return scales


def pnet_boxes(prob: np.ndarray, offsets: np.ndarray, scale: float,
               threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P-net cells over `threshold` as frame boxes. prob (H', W'), offsets (4, H', W') of
    an image rescaled by `scale` -> boxes (K, 4), scores (K,), offsets (K, 4)."""
    rows, cols = np.nonzero(prob > threshold)
    x1 = cols * PNET_STRIDE / scale
    y1 = rows * PNET_STRIDE / scale
    side = PNET_CELL / scale
    boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float64)
    return boxes.reshape(-1, 4), prob[rows, cols], offsets[:, rows, cols].T.reshape(-1, 4)


def crop_boxes(frame: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size, 3) crops of `frame` (H, W, 3) at integer-rounded `boxes` (N, 4);
    parts outside the frame are black. Returns uint8 (N, size, size, 3)."""
    height, width = frame.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for n, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(np.int64)):
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = frame[sy1:sy2, sx1:sx2]
        out[n] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> normalised float32 (N, 3, H, W)."""
    return normalise(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))


def _to_box(row: np.ndarray, height: int, width: int) -> Box:
    """Float (x1, y1, x2, y2) -> integer (x, y, w, h) clipped to the frame."""
    x1, y1 = max(0, int(round(row[0]))), max(0, int(round(row[1])))
    x2, y2 = min(width, int(round(row[2]))), min(height, int(round(row[3])))
    return x1, y1, max(1, x2 - x1), max(1, y2 - y1)


def _forward(net: torch.nn.Module, crops: np.ndarray) -> list[np.ndarray]:
    """Run `net` over uint8 crops (N, S, S, 3) in chunks; its outputs as arrays (N, ...)."""
    parts: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for start in range(0, len(crops), _CHUNK):
            parts.append([t.numpy() for t in net(_as_input(crops[start:start + _CHUNK]))])
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


def _split(values: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """Rows of `values` regrouped per frame, `counts[i]` rows for frame i."""
    return np.split(values, np.cumsum(counts)[:-1]) if counts else []


class MtcnnFaceDetector:
    """Largest face found by the three MTCNN stages; a :data:`~mmer.features.video.FaceDetector`.

    Reads the weights once, at construction (``weights_dir``, see
    :data:`mmer.nets.mtcnn.WEIGHT_FILES`), unless ready `nets` are given. The smallest
    face searched is the larger of `min_face_size` pixels and `min_face_fraction` of the
    frame's shorter side. Build one and reuse it over many clips; :meth:`detect_many`
    runs a whole clip's frames through each stage in one batch.
    """

    def __init__(self, weights_dir: str | Path = "resnet", *,
                 nets: tuple[PNet, RNet, ONet] | None = None, min_face_size: float = 20.0,
                 min_face_fraction: float = 0.0, scale_factor: float = 0.709,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 nms_thresholds: Sequence[float] = (0.7, 0.7, 0.7)) -> None:
        if not 0.0 < scale_factor < 1.0:
            raise BadInput(f"scale_factor must be in (0, 1), got {scale_factor}")
        if len(thresholds) != 3 or len(nms_thresholds) != 3:
            raise BadInput("thresholds and nms_thresholds need one value per stage (3)")
        self.pnet, self.rnet, self.onet = nets if nets is not None else load_mtcnn(weights_dir)
        self.min_face_size = float(min_face_size)
        self.min_face_fraction = float(min_face_fraction)
        self.scale_factor = float(scale_factor)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.nms_thresholds = tuple(float(t) for t in nms_thresholds)

    def __call__(self, frame: np.ndarray) -> Box | None:
        return self.detect_many(frame[None])[0]

    def detect_many(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[Box | None]:
        """The largest face's box (or None) of each uint8 (H, W, 3) RGB frame."""
        return [max(dets, key=lambda d: d.box[2] * d.box[3]).box if dets else None
                for dets in self.detections(frames)]

    def detections(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[list[Detection]]:
        """Every face of each uint8 (H, W, 3) RGB frame, most confident first."""
        frames = list(frames)
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise BadInput(f"MTCNN needs uint8 (H, W, 3) RGB frames, "
                                 f"got {frame.dtype} {frame.shape}")
        out: list[list[Detection]] = [[] for _ in frames]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            by_shape.setdefault(frame.shape, []).append(i)
        for idx in by_shape.values():
            for i, dets in zip(idx, self._detect_batch(np.stack([frames[i] for i in idx])),
                               strict=True):
                out[i] = dets
        return out

    def _detect_batch(self, frames: np.ndarray) -> list[list[Detection]]:
        """All stages on frames (B, H, W, 3) of one size."""
        boxes = self._proposals(frames)
        boxes = self._refine(frames, boxes)
        return self._output(frames, boxes)

    def _proposals(self, frames: np.ndarray) -> list[np.ndarray]:
        """Stage 1: squared P-net boxes (K_b, 4) per frame."""
        n, height, width = frames.shape[:3]
        min_face = max(self.min_face_size, self.min_face_fraction * min(height, width))
        found: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(n)]
        for scale in pyramid_scales(height, width, min_face, self.scale_factor):
            size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
            scaled = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
            with torch.inference_mode():
                prob, offsets = (t.numpy() for t in self.pnet(_as_input(scaled)))
            for b in range(n):
                boxes, scores, offs = pnet_boxes(prob[b], offsets[b], scale, self.thresholds[0])
                keep = nms(boxes, scores, 0.5)
                found[b].append((boxes[keep], scores[keep], offs[keep]))
        result = []
        for parts in found:
            boxes, scores, offs = (np.concatenate(p) for p in zip(*parts, strict=True)) \
                if parts else (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4)))
            keep = nms(boxes, scores, self.nms_thresholds[0])
            result.append(to_square(apply_offsets(boxes[keep], offs[keep])))
        return result

    def _refine(self, frames: np.ndarray, boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 2: R-net on 24x24 crops; squared surviving boxes per frame."""
        crops = np.concatenate([crop_boxes(f, b, 24) for f, b in zip(frames, boxes, strict=True)])
        prob, offsets = _forward(self.rnet, crops) if len(crops) else (np.zeros(0), np.zeros((0, 4)))
        result = []
        for b, p, o in zip(boxes, _split(prob, [len(b) for b in boxes]),
                           _split(offsets, [len(b) for b in boxes]), strict=True):
            ok = p > self.thresholds[1]
            keep = nms(b[ok], p[ok], self.nms_thresholds[1])
            result.append(to_square(apply_offsets(b[ok][keep], o[ok][keep])))
        return result

    def _output(self, frames: np.ndarray, boxes: list[np.ndarray]) -> list[list[Detection]]:
        """Stage 3: O-net on 48x48 crops; detections with landmarks per frame."""
        height, width = frames.shape[1:3]
        crops = np.concatenate([crop_boxes(f, b, 48) for f, b in zip(frames, boxes, strict=True)])
        if not len(crops):
            return [[] for _ in frames]
        counts = [len(b) for b in boxes]
        per_frame = zip(boxes, *(_split(v, counts) for v in _forward(self.onet, crops)), strict=True)
        result = []
        for b, p, o, marks in per_frame:
            ok = p > self.thresholds[2]
            b, p, o, marks = b[ok], p[ok], o[ok], marks[ok]
            size = b[:, 2:] - b[:, :2]                                       # (K, 2) w, h
            points = b[:, None, :2] + np.stack([marks[:, :5], marks[:, 5:]], axis=2) * size[:, None]
            b = apply_offsets(b, o)
            keep = nms(b, p, self.nms_thresholds[2], mode="min")
            result.append([Detection(_to_box(b[k], height, width), float(p[k]),
                                     points[k].astype(np.float32)) for k in keep])
        return result


DETECTORS = ("mtcnn", "haar")


def make_detector(name: str, *, weights_dir: str | Path = "resnet") -> FaceDetector:
    """The face detector called `name`; raises on an unknown name listing the choices."""
    if name == "haar":
        return HaarFaceDetector()
    if name == "mtcnn":
        return MtcnnFaceDetector(weights_dir)
    raise BadInput(f"unknown face detector {name!r}; choices: {', '.join(DETECTORS)}")
