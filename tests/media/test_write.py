"""The media writer refuses bad input."""
from __future__ import annotations

import numpy as np
import pytest

from mmer.media.write import write_clip


def test_write_clip_refuses_bad_input(tmp_path):
    frames = np.zeros((3, 47, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="odd.mp4: yuv420p needs even frame sides"):
        write_clip(tmp_path / "odd.mp4", frames, 10)
    with pytest.raises(ValueError, match="clip.avi: clips must end in"):
        write_clip(tmp_path / "clip.avi", frames[:, :46], 10)
    with pytest.raises(ValueError, match="empty.mp4: zero frames"):
        write_clip(tmp_path / "empty.mp4", [], 10)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
