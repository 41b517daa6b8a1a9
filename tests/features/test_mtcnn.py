"""MTCNN face detection: the box helpers on hand-computed cases, the detector with random
nets, and (when the weight files and the shared real clips are present) faces on real frames."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.features.mtcnn import (
    MtcnnFaceDetector,
    apply_offsets,
    box_overlap,
    crop_boxes,
    nms,
    pnet_boxes,
    pyramid_scales,
    to_square,
)
from mmer.nets.mtcnn import (
    WEIGHT_FILES,
    WEIGHT_SHA256,
    ONet,
    PNet,
    RNet,
    mtcnn_dir,
    normalise,
)

ROOT = Path(__file__).resolve().parents[2]


WEIGHTS = mtcnn_dir(ROOT / "resnet")


SHARED = ROOT.parent / "shared" / "data"


MEAD_CLIP = SHARED / "mead-video" / "M030_front_happy_level3_001.mp4"


NO_FACE_CLIP = SHARED / "real-media" / "pyfeat_no_face.mp4"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


def _random_nets() -> tuple[PNet, RNet, ONet]:
    torch.manual_seed(0)
    return PNet().eval(), RNet().eval(), ONet().eval()


def test_overlap_and_nms_on_hand_computed_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [2, 2, 6, 6]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # IoU of the first two: 90 / (100 + 100 - 90); the small box inside the first: 16 / 100.
    assert np.allclose(box_overlap(boxes[0], boxes[1:]), [90 / 110, 0.0, 0.16])
    assert np.allclose(box_overlap(boxes[0], boxes[1:], "min"), [0.9, 0.0, 1.0])
    assert nms(boxes, scores, 0.7).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.9).tolist() == [0, 1, 2, 3]
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [0, 2]
    assert nms(boxes, scores[::-1].copy(), 0.7).tolist() == [3, 2, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_box_regression_and_squaring_by_hand():
    boxes = np.array([[10.0, 20.0, 30.0, 60.0]])  # width 20, height 40
    moved = apply_offsets(boxes, np.array([[0.1, -0.25, 0.5, 0.0]]))
    assert np.allclose(moved, [[12.0, 10.0, 40.0, 60.0]])
    assert np.allclose(to_square(np.array([[0.0, 0.0, 10.0, 20.0]])), [[-5.0, 0.0, 15.0, 20.0]])


def test_pnet_cells_become_frame_boxes():
    prob = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.95]])
    offsets = np.arange(24, dtype=float).reshape(4, 2, 3)
    boxes, scores, offs = pnet_boxes(prob, offsets, scale=0.5, threshold=0.6)
    # Cell (row 1, col 2): 2 px step and 12 px window at scale 0.5 -> x 8..32, y 4..28.
    assert np.allclose(boxes, [[8.0, 4.0, 32.0, 28.0]]) and np.allclose(scores, [0.95])
    assert np.allclose(offs, [[5.0, 11.0, 17.0, 23.0]])


def test_pyramid_scales_stop_before_the_window_outgrows_the_image():
    assert np.allclose(pyramid_scales(100, 200, 20, 0.5), [0.6, 0.3, 0.15])


def test_crop_boxes_pads_outside_the_frame_with_black():
    frame = np.full((4, 4, 3), 200, np.uint8)
    crop = crop_boxes(frame, np.array([[-2.0, 0.0, 2.0, 4.0]]), 4)[0]
    assert (crop[:, :2] == 0).all() and (crop[:, 2:] == 200).all()


def test_detector_plumbing_with_random_nets():
    det = MtcnnFaceDetector(nets=_random_nets(), thresholds=(0.0, 0.0, 0.0))
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    boxes = det.detect_many(frames)
    assert len(boxes) == 2
    for x, y, w, h in boxes:
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= 30 and y + h <= 40
    assert det(frames[0]) == boxes[0]
    strict = MtcnnFaceDetector(nets=_random_nets(), thresholds=(1.0, 1.0, 1.0))
    assert strict(frames[0]) is None
    with pytest.raises(ValueError, match="uint8"):
        det(frames[0].astype(np.float32))


def _frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` evenly spaced RGB frames of a clip (decoded in full; the clips are short)."""
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [frames[i] for i in np.linspace(0, len(frames) - 1, count).round().astype(int)]


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    xyxy = np.array([[a[0], a[1], a[0] + a[2], a[1] + a[3]], [b[0], b[1], b[0] + b[2], b[1] + b[3]]])
    return float(box_overlap(xyxy[0].astype(float), xyxy[1:].astype(float))[0])


@pytest.fixture(scope="module")
def real_detector() -> MtcnnFaceDetector:
    if not all((WEIGHTS / name).is_file() for name in WEIGHT_FILES.values()):
        pytest.skip(f"MTCNN weight files not in {WEIGHTS}")
    for name, digest in WEIGHT_SHA256.items():
        assert hashlib.sha256((WEIGHTS / name).read_bytes()).hexdigest() == digest, name
    return MtcnnFaceDetector(WEIGHTS)


def test_real_face_found_where_haar_finds_it(real_detector):
    if not MEAD_CLIP.is_file():
        pytest.skip(f"{MEAD_CLIP} absent")
    from mmer.features.video import HaarFaceDetector
    haar = HaarFaceDetector()
    for frame in _frames(MEAD_CLIP, 3):
        (det,) = real_detector.detections([frame])[0][:1]
        assert det.score > 0.9
        assert _iou(det.box, haar(frame)) > 0.5
        x, y, w, h = det.box
        eyes_y, mouth_y = det.landmarks[:2, 1].mean(), det.landmarks[3:, 1].mean()
        assert y < eyes_y < mouth_y < y + h and (x <= det.landmarks[:, 0]).all()
        # R-net alone on Haar's crop: sure of a face only with the right flattening order.
        hx, hy, hw, hh = haar(frame)
        crop = crop_boxes(frame, np.array([[hx, hy, hx + hw, hy + hh]], float), 24)
        with torch.no_grad():
            prob = real_detector.rnet(normalise(torch.from_numpy(crop).permute(0, 3, 1, 2)))[0]
        assert prob.item() > 0.98


def test_no_face_in_a_clip_without_faces(real_detector):
    if not NO_FACE_CLIP.is_file():
        pytest.skip(f"{NO_FACE_CLIP} absent")
    assert real_detector.detect_many(_frames(NO_FACE_CLIP, 6)) == [None] * 6
