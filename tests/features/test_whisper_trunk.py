"""Cached-trunk fine-tuning of the Whisper audio encoder (finetune.top_blocks with a Whisper
backbone.audio) on synthetic speech, with random tiny.en-sized weights (or the real tiny.en
file where resnet/ has it): the cached path equals the full forward through the encoder
holding the tuned weights, and training / resume / evaluate / predict agree."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import evaluate
from mmer.cli.extract import main as extract_main
from mmer.config import ConfigError, load_config
from mmer.config.keys import batch_keys
from mmer.datasets import collect_records
from mmer.evaluation.sets import embed_entries, load_entries, model_keys
from mmer.features import trunk
from mmer.features.backbones import Backbones
from mmer.features.clips import prepare_clip
from mmer.features.trunk import whisper_cut, with_whisper_trunk
from mmer.models.whisper_top import build_whisper_top_blocks
from mmer.prediction.predict import predict_clip
from mmer.run.folder import load_checkpoint, model_from_checkpoint
from tests.helpers.speech import CONFIG, HAVE_WHISPER, WEIGHTS, _small, _write_speech
from tests.helpers.train import straight_and_resumed

SETS = ["split.n_folds=3", "split.n_val_actors=2", "model.d_model=32", "model.n_heads=2",
        "model.embed_dim=16", "train.batch_size=4", "train.m_per_class=2", "eval.k=[1]",
        "backbone.whisper_layers=[2,3]", "finetune.lr=1e-3", "features.num_workers=0"]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic speech root of actors 1-6 (24 clips)."""
    root = tmp_path_factory.mktemp("whisper_trunk") / "speech"
    _write_speech(root, range(1, 7))
    return root


def _cfg(tmp_path: Path, speech: Path, *extra: str, extract: bool = False):
    sets = [*_small(tmp_path), f"ravdess.root={speech}", f"features.cache_dir={tmp_path / 'cache'}",
            f"train.runs_dir={tmp_path / 'runs'}", *SETS, *extra]
    if extract:
        assert extract_main(["--config", str(CONFIG)] + [a for s in sets for a in ("--set", s)]) == 0
    return load_config(CONFIG, sets)


def _with_tuned(cfg, top):
    """Extraction's Backbones whose encoder holds `top`'s tuned blocks (a full forward)."""
    bb = Backbones(cfg, torch.device("cpu"))
    bb.audio.blocks[top.start:top.start + len(top.blocks)].load_state_dict(top.blocks.state_dict())
    if top.ln_post is not None:
        bb.audio.ln_post.load_state_dict(top.ln_post.state_dict())
    return bb


@pytest.mark.parametrize(("layers", "blocks", "cut"), [("[2,3]", "1", 2), ("[2,3]", "2", 1),
                                                       ("[2,3]", "all", 0), ("[4]", "1", 3)])
def test_cached_states_under_tuned_blocks_equal_the_full_forward(tmp_path, speech, one_thread, monkeypatch,
                                                                 layers, blocks, cut):
    weights = [f"backbone.weights_dir={WEIGHTS}"] if HAVE_WHISPER else []
    cfg = _cfg(tmp_path, speech, f"backbone.whisper_layers={layers}", f"finetune.top_blocks={blocks}", *weights)
    assert whisper_cut(cfg) == cut and "whisper_states" in batch_keys(cfg)
    records = collect_records(cfg)[0][:5]
    items = [prepare_clip(r, cfg, video=False, audio=True) for r in records]
    frozen = [{"audio": a} for a in Backbones(cfg, torch.device("cpu")).whisper_segments(items)]
    entries = with_whisper_trunk(frozen, records, cfg)
    states = torch.stack([e["whisper_states"] for e in entries]).float()
    valid = torch.stack([e["whisper_valid"] for e in entries])
    audio = torch.stack([e["audio"] for e in entries]).float()
    assert states.shape == (5, 50, 384)  # the whole 100-frame window, not only the audio
    top = build_whisper_top_blocks(cfg).eval()
    with torch.no_grad():  # untuned blocks give the frozen features
        torch.testing.assert_close(top(states, valid, audio), audio, atol=2e-2, rtol=1e-2)
        for p in top.parameters():  # tuned weights, so the blocks differ from the trunk's copy
            p.add_(0.05 * torch.randn_like(p))
        via_cache = top(states, valid, audio)
    full = torch.stack(_with_tuned(cfg, top).whisper_segments(items)).float()
    assert not torch.allclose(full, audio, atol=0.1)  # the tuned weights change the features
    torch.testing.assert_close(via_cache, full, atol=2e-2, rtol=1e-2)  # fp16 states and features
    [path] = (tmp_path / "cache" / "audio").glob(f"trunk-whisper_tiny-*-b{cut}-f100-*.pt")
    assert torch.load(path, weights_only=True)["states"].dtype == torch.float16
    # A second pass reads the file: no encoder is built.
    monkeypatch.setattr(trunk, "build_whisper", lambda _: pytest.fail("trunk recomputed"))
    again = with_whisper_trunk(frozen, records, cfg)
    assert all(torch.equal(a["whisper_states"], b["whisper_states"]) for a, b in zip(again, entries, strict=True))


def test_conflicting_settings_are_refused(tmp_path: Path) -> None:
    base = [*_small(tmp_path), *SETS]
    with pytest.raises(ConfigError, match="highest Whisper block the model reads"):
        load_config(CONFIG, [*base, "finetune.top_blocks=4"])
    with pytest.raises(ConfigError, match="input augmentation"):
        load_config(CONFIG, [*base, "finetune.top_blocks=1", "train.augment.mixup_alpha=0.2"])
    with pytest.raises(ConfigError, match="speaker_norm"):
        load_config(CONFIG, [*base, "finetune.top_blocks=2", "model.speaker_norm=true"])


@pytest.mark.slow
def test_tuned_blocks_resume_evaluate_and_predict_as_cached(tmp_path, speech, one_thread, monkeypatch):
    cfg = _cfg(tmp_path, speech, "finetune.top_blocks=1", "train.epochs=3", extract=True)
    runs = tmp_path / "runs"
    straight, resumed = straight_and_resumed(cfg, runs, monkeypatch, epochs=3)
    assert straight == resumed
    best = runs / "straight" / "fold_0" / "best.pt"
    ckpt = load_checkpoint(best)
    tuned = [k for k in ckpt["model"] if k.startswith("audio_encoder.")]
    assert tuned and all(k.startswith("audio_encoder.blocks.0.") for k in tuned)  # block 3 only
    model, _ = model_from_checkpoint(ckpt)
    assert not torch.equal(model.audio_encoder.blocks[0].attn.qkv.weight,
                           build_whisper_top_blocks(cfg).blocks[0].attn.qkv.weight)  # it trained
    # evaluate.py rebuilds trunk + tuned block from the checkpoint: the training's dev scores.
    assert evaluate.main(["--run", str(runs / "straight"), "--no-plots"]) == 0
    report = json.loads((runs / "straight" / "fold_0" / "report.json").read_text())
    assert report["results"]["val"]["softmax"]["uar"] == pytest.approx(straight["val_uar"])
    # A copy of the root elsewhere: new clips to the caches, made by extraction + trunk.
    other = shutil.copytree(speech, tmp_path / "copy")
    args = ["--checkpoint", str(best), "--no-plots", "--extract", "--data-root"]
    assert evaluate.main(args + [str(speech)]) == 0
    assert evaluate.main(args + [str(other)]) == 0
    cached, fresh = (json.loads(next(best.parent.glob(f"eval_*_{n}/report.json")).read_text())
                     for n in ("speech", "copy"))
    a, b = fresh["results"]["test"], cached["results"]["test"]
    assert a["softmax"]["confusion"] == b["softmax"]["confusion"] and a["softmax"]["n"] == 24
    assert a["knn"]["1"]["confusion"] == b["knn"]["1"]["confusion"]
    assert a["embedding"] == pytest.approx(b["embedding"], abs=1e-6)
    # predict on a new clip: the cached path's probabilities.
    record = collect_records(cfg)[0][0]
    clip = other / Path(record.path).relative_to(speech)
    result = predict_clip(clip, best, k=1)
    expected = embed_entries(model, load_entries(cfg, [record], "test"), model_keys(cfg),
                             device=torch.device("cpu"))
    probs = torch.softmax(torch.from_numpy(expected.logits[0]), 0)
    got = torch.tensor([result["probabilities"][n] for n in ckpt["label_names"]])
    torch.testing.assert_close(got, probs, atol=2e-3, rtol=0)
    assert result["feature_check"]["ok"], result["feature_check"]


def test_trunk_cache_names_random_weights_as_the_feature_cache_does(tmp_path):
    """A weight file on disk with ``backbone.pretrained: none`` still means random weights:
    the trunk file must not carry that file's hash, or pretrained runs would read it."""
    cfg = load_config(CONFIG, [*_small(tmp_path), "finetune.top_blocks=1",
                               f"backbone.weights_dir={tmp_path / 'weights'}"])
    weights = trunk.weight_file(cfg.backbone, "audio")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a real model")
    loaded = trunk.WhisperTrunkCache.for_config(cfg, whisper_cut(cfg)).model_id
    none = load_config(CONFIG, [*_small(tmp_path), "finetune.top_blocks=1", "backbone.pretrained=none",
                                f"backbone.weights_dir={tmp_path / 'weights'}"])
    random = trunk.WhisperTrunkCache.for_config(none, whisper_cut(none)).model_id
    assert loaded != random and random.endswith("-random") and not loaded.endswith("-random")
