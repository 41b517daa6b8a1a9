"""Per-speaker input standardisation (model.speaker_norm) and the input builder's settings for it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmer.inputs.speaker_norm import speaker_normalise


def _entries(rng: np.random.Generator) -> list[dict]:
    """Two speakers with different offsets and scales: vectors (3,), log-mels (2, 1, 4, 5)."""
    out = []
    for speaker, (shift, scale) in {"1": (10.0, 3.0), "2": (-4.0, 0.5)}.items():
        for i in range(6):
            out.append({"clip_id": f"{speaker}-{i}", "speaker": speaker,
                        "visual": torch.tensor(rng.normal(shift, scale, 3), dtype=torch.float32),
                        "logmel": torch.tensor(rng.normal(shift, scale, (2, 1, 4, 5)), dtype=torch.float16)})
    return out


def test_each_speaker_is_standardised_on_its_own_clips_per_channel():
    entries = _entries(np.random.default_rng(0))
    normed = speaker_normalise(entries, ["visual", "logmel"])
    for speaker in ("1", "2"):
        vis = torch.stack([e["visual"] for e in normed if e["speaker"] == speaker])
        np.testing.assert_allclose(vis.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(vis.std(0, unbiased=False), 1.0, atol=1e-4)
        mel = torch.stack([e["logmel"] for e in normed if e["speaker"] == speaker])   # (N, 2, 1, 4, 5)
        per_band = mel.transpose(0, 3).reshape(4, -1)                                 # mel band first
        np.testing.assert_allclose(per_band.mean(1), 0.0, atol=1e-4)
        np.testing.assert_allclose(per_band.std(1, unbiased=False), 1.0, atol=1e-3)
    # The inputs are left alone; other fields are kept.
    assert entries[0]["logmel"].dtype == torch.float16 and normed[0]["clip_id"] == "1-0"


def test_a_speaker_s_result_does_not_depend_on_any_other_speaker():
    entries = _entries(np.random.default_rng(1))
    moved = [dict(e, visual=e["visual"] * 50 + 7) if e["speaker"] == "2" else e for e in entries]
    a = speaker_normalise(entries, ["visual"])
    b = speaker_normalise(moved, ["visual"])
    for x, y in zip(a, b, strict=True):
        if x["speaker"] == "1":
            assert torch.equal(x["visual"], y["visual"])


def test_cached_views_are_standardised_with_their_speaker_s_statistics():
    """Video items (S, D) with K=2 views each: a view equal to its centred item comes out
    equal to it, and a shifted view keeps its offset in the speaker's std units."""
    rng = np.random.default_rng(2)
    entries, scales = [], {"1": 2.0, "2": 0.25}
    for speaker, shift in {"1": 3.0, "2": -1.0}.items():
        scale = scales[speaker]
        for i in range(5):
            video = torch.tensor(rng.normal(shift, scale, (4, 6)), dtype=torch.float32)
            entries.append({"clip_id": f"{speaker}-{i}", "speaker": speaker, "video": video,
                            "video_views": torch.stack([video, video + scale])})
    normed = speaker_normalise(entries, ["video"])
    for e, n in zip(entries, normed, strict=True):
        assert n["video_views"].shape == (2, 4, 6)
        torch.testing.assert_close(n["video_views"][0], n["video"])
        per_channel = torch.stack([x["video"] for x in entries if x["speaker"] == e["speaker"]])
        std = per_channel.reshape(-1, 6).std(0, unbiased=False)
        torch.testing.assert_close(n["video_views"][1] - n["video"], (scales[e["speaker"]] / std).expand(4, 6))
    assert torch.equal(entries[0]["video_views"][0], entries[0]["video"])  # inputs left alone


def test_a_constant_channel_becomes_zero_and_a_missing_speaker_is_named():
    entries = [{"clip_id": f"c{i}", "speaker": "7", "visual": torch.tensor([5.0, float(i)])}
               for i in range(4)]
    out = torch.stack([e["visual"] for e in speaker_normalise(entries, ["visual"])])
    assert torch.isfinite(out).all() and torch.equal(out[:, 0], torch.zeros(4))
    with pytest.raises(ValueError, match="clip c9 has no speaker"):
        speaker_normalise([{"clip_id": "c9", "speaker": "", "visual": torch.ones(2)}], ["visual"])


def test_speakers_with_too_few_clips_are_named_or_refused(caplog):
    entries = [{"clip_id": f"c{i}", "speaker": s, "visual": torch.tensor([float(i), 1.0])}
               for i, s in enumerate(["lone", "pair", "pair", "many", "many", "many"])]
    caplog.set_level("WARNING", logger="mmer")
    speaker_normalise(entries, ["visual"], min_clips=3)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "2 of 3 speakers" in warned[0], warned
    assert "lone (1)" in warned[0] and "pair (2)" in warned[0] and "many" not in warned[0]
    with pytest.raises(ValueError, match="fewer than 3 clips.*lone"):
        speaker_normalise(entries, ["visual"], min_clips=3, refuse_few=True)
    caplog.clear()
    speaker_normalise(entries, ["visual"], min_clips=1)
    assert not caplog.records


def test_the_builder_passes_the_speaker_norm_settings(monkeypatch):
    from mmer.config import config_from_dict
    from mmer.inputs import builder
    seen = {}
    monkeypatch.setattr(builder, "batch_keys", lambda cfg: ["visual"])
    monkeypatch.setattr(builder, "speaker_normalise", lambda e, k, **kw: seen.update(kw) or list(e))
    cfg = config_from_dict({"model": {"speaker_norm": True, "speaker_norm_min_clips": 7,
                                      "speaker_norm_few_clips": "refuse"}})
    builder.finish_entries(cfg, [{"clip_id": "a", "speaker": "1"}], [], "test", visual={"a": torch.ones(2)})
    assert seen == {"min_clips": 7, "refuse_few": True}
