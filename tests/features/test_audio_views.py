"""Training views of the Whisper input (backbone.audio_views): speed-changed copies of each
clip's audio, encoded and cached as "audio_views"; training draws one of the 1 + K per clip
and epoch, evaluation reads the unchanged audio; settings that cannot work are refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmer.cli.extract import main as extract_main
from mmer.config import ConfigError, load_config
from mmer.datasets import collect_records
from mmer.features.cache import FeatureCache, feature_config_hash
from mmer.features.whisper import speed_views
from mmer.inputs.datasets import FeatureDataset
from mmer.inputs.speaker_norm import speaker_normalise
from tests.helpers.speech import CONFIG, _small, _write_speech


def test_speed_views_change_the_length_by_factors_in_range_and_repeat_by_seed():
    wave = np.sin(np.arange(16000) / 8.0).astype(np.float32)
    views = speed_views(wave, 16000, 6, 0.1, seed=3)
    assert len(views) == 6 and all(v.dtype == np.float32 for v in views)
    factors = [len(wave) / len(v) for v in views]
    assert all(0.9 - 1e-3 <= f <= 1.1 + 1e-3 for f in factors), factors
    assert len({len(v) for v in views}) > 1                      # not one factor for all
    again = speed_views(wave, 16000, 6, 0.1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(views, again, strict=True))
    assert [len(v) for v in speed_views(wave, 16000, 6, 0.1, seed=4)] != [len(v) for v in views]


def _cfg(tmp_path, *extra):
    sets = [f"ravdess.root={tmp_path / 'speech'}", f"features.cache_dir={tmp_path / 'cache'}", *extra]
    return load_config(CONFIG, [*_small(tmp_path), *sets])


def test_views_are_refused_where_they_cannot_work(tmp_path):
    with pytest.raises(ConfigError, match="Whisper encoders only"):
        _cfg(tmp_path, "backbone.audio=resnet18", "backbone.audio_views=2")
    with pytest.raises(ConfigError, match="audio_view_speed"):
        _cfg(tmp_path, "backbone.audio_views=2", "backbone.audio_view_speed=0.6")
    with pytest.raises(ConfigError, match="top_blocks"):
        _cfg(tmp_path, "backbone.audio_views=2", "finetune.top_blocks=1")
    with pytest.raises(ConfigError, match="audio_views must be 0 or more"):
        _cfg(tmp_path, "backbone.audio_views=-1")
    assert feature_config_hash(_cfg(tmp_path)) != feature_config_hash(_cfg(tmp_path, "backbone.audio_views=2"))


def test_extraction_caches_views_beside_the_unchanged_audio_and_training_draws_them(tmp_path, one_thread):
    _write_speech(tmp_path / "speech", (1, 2))
    plain, viewed = _cfg(tmp_path), _cfg(tmp_path, "backbone.audio_views=2")
    for cfg_sets in ([], ["backbone.audio_views=2"]):
        args = ["--config", str(CONFIG)]
        for s in [*_small(tmp_path), f"ravdess.root={tmp_path / 'speech'}",
                  f"features.cache_dir={tmp_path / 'cache'}", *cfg_sets]:
            args += ["--set", s]
        assert extract_main(args) == 0
    records, _ = collect_records(viewed)
    without, _ = FeatureCache.for_config(plain).load_all(records)
    entries, missing = FeatureCache.for_config(viewed).load_all(records)
    assert len(entries) == 8 and not missing
    for e, w in zip(entries, without, strict=True):
        assert "audio_views" not in w
        assert tuple(e["audio_views"].shape) == (2, *e["audio"].shape)        # (K, S, D)
        assert torch.equal(e["audio"], w["audio"])                           # the unchanged audio as before
        assert not torch.equal(e["audio_views"][0], e["audio"])
        assert not torch.equal(e["audio_views"][0], e["audio_views"][1])
    normed = speaker_normalise(entries, ["audio"])
    data = FeatureDataset(normed, ["audio"], seed=0)
    assert data.audio_views is not None and data.views is None
    assert all(torch.equal(data[i]["audio"], normed[i]["audio"]) for i in range(len(data)))   # eval: unchanged
    data.train()
    seen = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        for i in range(len(data)):
            view = data.view_of(i, "audio")
            want = normed[i]["audio"] if view == 0 else normed[i]["audio_views"][view - 1]
            assert torch.equal(data[i]["audio"], want.float())
            seen.add(view)
    assert seen == {0, 1, 2}
