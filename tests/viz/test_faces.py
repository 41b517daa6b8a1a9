"""Face contact sheet: frame spacing, detector choice, tiles and the PNG, with stub detectors."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from mmer.cli.faces import main
from mmer.viz.faces import contact_sheet, evenly_spaced, face_tiles, make_detector, save_sheet


def test_evenly_spaced_covers_first_and_last_frame():
    assert evenly_spaced(10, 4).tolist() == [0, 3, 6, 9]
    assert evenly_spaced(2, 6).tolist() == [0, 1]


def test_unknown_detector_lists_the_choices():
    with pytest.raises(ValueError, match="mtcnn, haar"):
        make_detector("dlib")


def test_face_tiles_crop_the_square_box_and_mark_misses():
    frames = np.zeros((3, 40, 60, 3), np.uint8)
    frames[:, 10:20, 30:40] = 255                          # a white square "face"
    boxes = iter([(30, 10, 10, 10), None])
    tiles = face_tiles(frames, np.array([0, 2]), lambda f: next(boxes), margin=0.0, size=16)
    assert tiles[1] is None
    assert tiles[0].shape == (16, 16, 3) and (tiles[0] == 255).all()


def test_sheet_is_a_png_with_a_no_face_tile(tmp_path):
    face = np.full((8, 8, 3), 255, np.uint8)
    path = save_sheet(contact_sheet([("a", [face, None]), ("b", [None])], "t"), tmp_path / "s.png")
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50
    assert not list(tmp_path.glob(".*.tmp"))


def test_faces_command_writes_a_sheet_and_refuses_when_no_clip_decodes(no_audio_mp4, corrupt_mp4, tmp_path):
    out = tmp_path / "sheet.png"
    assert main([str(no_audio_mp4), str(corrupt_mp4), "--out", str(out), "--detector", "haar",
                 "--frames", "2"]) == 0
    assert imread(out).ndim == 3
    assert main([str(corrupt_mp4), "--out", str(tmp_path / "none.png"), "--detector", "haar"]) == 2
    assert not (tmp_path / "none.png").exists()
