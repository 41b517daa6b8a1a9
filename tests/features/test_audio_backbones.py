"""The pretrained audio backbones of extraction (backbone.audio whisper_tiny, mobilenet_v2,
efficientnet_lite0): pooling, shapes, what the cache meta says, and a tiny extract -> train
run on synthetic speech. Parts that need the real weight files skip when resnet/ lacks them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from mmer.cli.extract import main as extract_main
from mmer.config import AudioConfig, load_config
from mmer.datasets import collect_records
from mmer.features.backbones import Backbones
from mmer.features.cache import FeatureCache, feature_config_hash
from mmer.features.clips import prepare_clip
from mmer.features.whisper import segment_pool, valid_states, whisper_log_mel, whisper_window
from mmer.nets.pretrained import MissingWeightsError
from mmer.nets.whisper import load_whisper_encoder
from tests.helpers.speech import CONFIG, HAVE_WHISPER, ROOT, WEIGHTS, _small, _write_speech

HAVE_MOBILENET = (WEIGHTS / "mobilenet_v2-b0353104.pth").is_file()


def _cfg(tmp_path: Path, *extra: str):
    return load_config(CONFIG, [*_small(tmp_path), *extra])


def _tone(seconds: float, sr: int = 16000, lead: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    body = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.concatenate([np.zeros(int(lead * sr), np.float32), body])


# ---------------------------------------------------------------- pooling (pure)


def test_segment_pool_averages_only_the_states_covering_audio():
    states = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 2)  # state t = (t, t)
    states[6:] = 1000.0  # padding states: must never reach a segment
    out = segment_pool(states, n_valid=6, n_segments=3, pool="mean")
    assert out.shape == (3, 2)
    assert out[:, 0].tolist() == [0.5, 2.5, 4.5]  # states 0-1, 2-3, 4-5
    both = segment_pool(states, n_valid=6, n_segments=3, pool="mean_std")
    assert both.shape == (3, 4)
    assert both[:, 2].tolist() == [0.5, 0.5, 0.5]  # population std of two states 1 apart
    torch.testing.assert_close(both[:, :2], out)


def test_segment_pool_with_fewer_states_than_segments_repeats_a_state():
    states = torch.tensor([[1.0], [3.0], [9.0]])
    out = segment_pool(states, n_valid=2, n_segments=4, pool="mean_std")
    assert out[:, 0].tolist() == [1.0, 1.0, 3.0, 3.0] and out[:, 1].tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="choices: mean, mean_std"):
        segment_pool(states, 2, 2, "max")


def test_valid_states_count_320_samples_each_within_the_window():
    assert valid_states(320, 100) == 1 and valid_states(321, 100) == 2
    assert valid_states(16000, 100) == 50  # 1 s of audio fills a 1 s window
    assert valid_states(0, 100) == 1


def test_whisper_window_trims_resamples_and_counts_the_audio():
    cfg = AudioConfig(trim_db=30.0, trim_margin_ms=0.0)
    wave48 = np.repeat(_tone(0.5, lead=0.5), 3)  # 48 kHz: 0.5 s silence then 0.5 s tone
    mel, n_valid = whisper_window(wave48, 48000, cfg, n_frames=200)
    assert mel.shape == (80, 200)
    assert abs(n_valid - 25) <= 2  # 0.5 s of tone = 25 states, give or take a frame
    untrimmed_mel, untrimmed = whisper_window(wave48, 48000, AudioConfig(), n_frames=200)
    assert untrimmed == 50
    # trimmed, the tone starts the window; untrimmed, the first half second is silence
    assert float(untrimmed_mel[:, :45].max()) == float(untrimmed_mel.min())  # at the floor
    assert float(mel[:, :20].max()) > float(mel.min()) + 1.0


# ---------------------------------------------------------------- backbones


def _item(cfg, seconds: float = 0.6) -> dict:
    mel, n_valid = whisper_window(_tone(seconds), 16000, AudioConfig(), cfg.backbone.whisper_frames)
    return {"whisper_mel": mel, "whisper_valid": n_valid}


def test_whisper_backbone_without_weights_is_random_and_says_so(tmp_path, one_thread):
    cfg = _cfg(tmp_path)
    nets = Backbones(cfg, torch.device("cpu"))
    meta = nets.pretrained["audio"]
    assert meta["name"] == "whisper_tiny" and meta["status"] == "random"
    assert "not found" in meta["reason"]
    feats = nets.features([_item(cfg), _item(cfg, 0.3)])
    assert [tuple(f["audio"].shape) for f in feats] == [(3, 768), (3, 768)]
    assert feats[0]["audio"].dtype == torch.float16
    again = Backbones(cfg, torch.device("cpu")).features([_item(cfg)])
    # the same random network (batch of 1 vs 2: float rounding only)
    torch.testing.assert_close(again[0]["audio"], feats[0]["audio"], atol=1e-2, rtol=1e-2)


def test_whisper_base_backbone_has_base_sizes_and_names_its_asset(tmp_path, one_thread, caplog):
    cfg = _cfg(tmp_path, "backbone.audio=whisper_base", "backbone.whisper_layers=[3,6]")
    nets = Backbones(cfg, torch.device("cpu"))
    meta = nets.pretrained["audio"]
    assert meta["name"] == "whisper_base" and meta["status"] == "random"
    assert meta["file"].endswith("whisper-base-ct2/model.bin")
    assert "mmer.weights fetch whisper_base" in caplog.text
    cfg_out = nets.audio.cfg
    assert (cfg_out.n_state, cfg_out.n_head, cfg_out.n_layer) == (512, 8, 6)
    feats = nets.features([_item(cfg)])
    assert tuple(feats[0]["audio"].shape) == (3, 2 * 2 * 512)  # 2 blocks, mean + std each
    mean_only = Backbones(_cfg(tmp_path, "backbone.audio_pool=mean"), torch.device("cpu"))
    assert tuple(mean_only.features([_item(cfg)])[0]["audio"].shape) == (3, 384)


def test_whisper_required_without_weights_fails_naming_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="whisper-tiny.en-ct2/model.bin"):
        Backbones(_cfg(tmp_path, "backbone.pretrained=required"), torch.device("cpu"))


def test_whisper_layer_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"whisper_layers must be blocks in 1..4, got \[2, 5\]"):
        Backbones(_cfg(tmp_path, "backbone.whisper_layers=[2, 5]"), torch.device("cpu"))


@pytest.mark.skipif(not HAVE_WHISPER, reason="resnet/whisper-tiny.en-ct2 absent (python -m mmer.weights fetch whisper_tiny_en)")
@pytest.mark.parametrize("layers", [[4], [2, 3]])
def test_real_whisper_backbone_pools_the_encoders_states(tmp_path, one_thread, layers):
    cfg = _cfg(tmp_path, f"backbone.weights_dir={WEIGHTS}", f"backbone.whisper_layers={layers}")
    nets = Backbones(cfg, torch.device("cpu"))
    assert nets.pretrained["audio"]["status"] == "loaded"
    item = _item(cfg)
    got = nets.features([item])[0]["audio"]
    assert got.shape == (3, 768 * len(layers))
    encoder = load_whisper_encoder(WEIGHTS / "whisper-tiny.en-ct2")
    with torch.no_grad():
        blocks = encoder.block_states(item["whisper_mel"][None], layers)
        plain = encoder(whisper_log_mel(_tone(0.6), 100)[None])[0]
    assert item["whisper_valid"] == 30 and all(b.shape == (1, 50, 384) for b in blocks)
    want = torch.cat([torch.stack([torch.cat([p.mean(0), p.std(0, correction=0)])
                                   for p in b[0, :30].split(10)]) for b in blocks], dim=1)
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-3)  # fp16 storage
    if layers == [4]:  # the last block's states are the encoder's plain output
        torch.testing.assert_close(blocks[0][0], plain)
    else:  # intermediate blocks are the raw residual stream, not the final output
        assert not torch.allclose(blocks[1][0], plain, atol=1e-2)


def test_cnn_audio_backbones_on_log_mel_images(tmp_path, one_thread):
    logmel = torch.randn(3, 1, 32, 20)
    for name in ("mobilenet_v2", "efficientnet_lite0"):
        cfg = _cfg(tmp_path, f"backbone.audio={name}", "backbone.audio_image_size=64")
        nets = Backbones(cfg, torch.device("cpu"))
        assert nets.pretrained["audio"]["status"] == "random"
        assert tuple(nets.features([{"logmel": logmel}])[0]["audio"].shape) == (3, 1280)
    maps = Backbones(_cfg(tmp_path, "backbone.audio=mobilenet_v2", "backbone.audio_image_size=64",
                          "backbone.audio_feature=map"), torch.device("cpu"))
    assert tuple(maps.features([{"logmel": logmel}])[0]["audio"].shape) == (3, 1280, 2, 2)


@pytest.mark.skipif(not HAVE_MOBILENET, reason="resnet/mobilenet_v2-b0353104.pth absent")
def test_real_mobilenet_audio_backbone_loads(tmp_path, one_thread):
    cfg = _cfg(tmp_path, f"backbone.weights_dir={WEIGHTS}", "backbone.audio=mobilenet_v2",
               "backbone.audio_image_size=64")
    nets = Backbones(cfg, torch.device("cpu"))
    assert nets.pretrained["audio"]["status"] == "loaded"
    out = nets.features([{"logmel": torch.randn(3, 1, 32, 20)}])[0]["audio"]
    assert out.shape == (3, 1280) and torch.isfinite(out.float()).all()


def test_whisper_settings_enter_the_cache_key_only_where_they_matter(tmp_path):
    base = _cfg(tmp_path)
    assert feature_config_hash(base) != feature_config_hash(_cfg(tmp_path, "backbone.whisper_layers=[3]"))
    assert feature_config_hash(base) != feature_config_hash(_cfg(tmp_path, "backbone.whisper_frames=200"))
    plain = _cfg(tmp_path, "backbone.audio=none")
    assert feature_config_hash(plain) == feature_config_hash(
        _cfg(tmp_path, "backbone.audio=none", "backbone.whisper_layers=[3]"))


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_whisper_extract_then_train_on_synthetic_speech(tmp_path, one_thread):
    _write_speech(tmp_path / "speech", range(1, 7))
    sets = [f"ravdess.root={tmp_path / 'speech'}", f"features.cache_dir={tmp_path / 'cache'}",
            f"train.runs_dir={tmp_path / 'runs'}", "split.n_folds=3", "split.n_val_actors=2",
            "model.d_model=32", "model.n_heads=2", "model.embed_dim=16", "train.epochs=2",
            "train.batch_size=4", "train.m_per_class=2", "eval.k=[1]"]
    args = ["--config", str(CONFIG)] + [a for s in _small(tmp_path) + sets for a in ("--set", s)]
    assert extract_main(args) == 0
    cfg = _cfg(tmp_path, *sets)
    records, _ = collect_records(cfg)
    entries, missing = FeatureCache.for_config(cfg).load_all(records)
    assert len(entries) == 24 and not missing
    assert {tuple(e["audio"].shape) for e in entries} == {(3, 768)}
    assert {e["meta"]["pretrained"]["audio"]["status"] for e in entries} == {"random"}
    item = prepare_clip(records[0], cfg, video=False, audio=True)
    assert tuple(item["whisper_mel"].shape) == (80, 100)
    assert train.main(args + ["--fold", "0", "--run-name", "w"]) == 0
    lines = (tmp_path / "runs" / "w" / "fold_0" / "metrics.jsonl").read_text().splitlines()
    assert len([json.loads(x) for x in lines if "val_accuracy" in x]) == 2


def test_pretrained_configs_load_and_share_one_audio_cache():
    audio = load_config(CONFIG)
    av = load_config(ROOT / "configs" / "ravdess_av_pretrained.yaml")
    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert audio.backbone.audio == av.backbone.audio == demo.backbone.audio == "whisper_tiny"
    assert audio.model.speaker_norm and av.model.speaker_norm  # the speaker-normalised protocol
    assert audio.model.ensemble == av.model.ensemble == 5
    assert av.model.modalities == ["audio", "visual"] and demo.backbone.pretrained == "optional"
    # same audio and backbone sections: the AV config reads the audio-only config's cache
    assert (audio.audio, audio.backbone) == (av.audio, av.backbone)
