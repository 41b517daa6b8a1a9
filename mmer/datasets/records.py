"""The one record type every dataset reader produces."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ClipRecord:
    """One labelled clip.

    `group` ties together items that must fall on the same side of every split
    (for RAVDESS the trial id: the AV file, its video-only twin and its audio-only
    file share it).
    """

    clip_id: str
    path: Path | None
    label: int
    speaker: str
    group: str
    extra: dict[str, Any] = field(default_factory=dict)
