"""MEAD: names, the scan of both layouts, string-actor folds, face detector choice, training
views, and a tiny extract -> train on synthetic video-only clips with a 2D frame encoder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.config import Config, ConfigError, MeadConfig, SplitConfig, VideoConfig, config_from_dict
from mmer.datasets import get_adapter
from mmer.datasets.mead import MeadRootError, scan_mead
from mmer.datasets.records import ClipRecord
from mmer.datasets.splits import SplitError, actor_folds, fold_split, record_actors, split_records
from mmer.extraction.job import extract
from mmer.features.cache import FeatureCache, feature_config_hash
from mmer.features.clips import build_cropper
from mmer.features.sampling import snippet_indices
from mmer.features.video import (
    HaarFaceDetector,
    jittered_indices,
    snippet_boxes,
    snippet_views,
)
from mmer.inputs.datasets import FeatureDataset
from mmer.media.decode import decode_clip
from mmer.synth.mead import MEAD_EMOTIONS, MalformedName, make_mead_set, parse_name, parse_tree_path
from mmer.train.data import fold_data
from mmer.train.loop import run_fold

ACTORS = ("M001", "W002", "M003")
SHARED_MEAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mead-video"


@pytest.fixture(scope="module")
def flat_set(tmp_path_factory) -> Path:
    """3 actors x 8 emotions, flat names, 32x32 px, 15 fps, 0.6 s, no audio stream."""
    root = tmp_path_factory.mktemp("mead_flat")
    make_mead_set(root, actors=ACTORS, size=(32, 32), seconds=0.6)
    return root


# ------------------------------------------------------------------------------ names


def test_flat_name_parses_into_its_parts():
    name = parse_name("M030_front_angry_level3_001.mp4")
    assert (name.actor, name.view, name.emotion, name.level, name.take) == ("M030", "front", "angry", 3, "001")
    assert name.label == 0 and name.stem == "M030_front_angry_level3_001" and name.gender == "male"
    assert parse_name("W011_left_30_surprised_level1_012").label == MEAD_EMOTIONS.index("surprised")


@pytest.mark.parametrize("bad, reason", [
    ("X030_front_angry_level3_001.mp4", "actor"),
    ("M30_front_angry_level3_001.mp4", "actor"),
    ("M030_side_angry_level3_001.mp4", "expected"),
    ("M030_front_bored_level3_001.mp4", "emotion"),
    ("M030_front_angry_level4_001.mp4", "level"),
    ("M030_front_neutral_level3_001.mp4", "neutral"),
    ("M030_front_angry_level3_1.mp4", "take"),
    ("M030_front_angry_level3_001.avi", "extension"),
    ("M030_front_angry_001.mp4", "expected"),
])
def test_malformed_names_are_refused_with_the_reason(bad, reason):
    with pytest.raises(MalformedName, match=reason):
        parse_name(bad)


def test_tree_path_parses_and_refuses(tmp_path):
    good = tmp_path / "W009" / "video" / "front" / "sad" / "level_2" / "003.mp4"
    assert parse_tree_path(good, tmp_path).stem == "W009_front_sad_level2_003"
    with pytest.raises(MalformedName, match="level_"):
        parse_tree_path(tmp_path / "W009" / "video" / "front" / "sad" / "2" / "003.mp4", tmp_path)
    with pytest.raises(MalformedName, match="audio|expected"):
        parse_tree_path(tmp_path / "W009" / "audio" / "front" / "sad" / "level_2" / "003.mp4", tmp_path)


# ------------------------------------------------------------------------------ scans


def test_scan_of_the_flat_layout_skips_bad_names(flat_set, tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for path in sorted(flat_set.glob("M001_*.mp4"))[:3]:
        (root / path.name).symlink_to(path)
    (root / "M001_front_bored_level3_001.mp4").write_bytes(b"x")
    (root / "README.md").write_text("docs are not clips")
    records, skips = scan_mead(MeadConfig(root=str(root)))
    assert [r.clip_id for r in records] == sorted(p.stem for p in root.glob("M001_front_[!b]*.mp4"))
    assert {r.speaker for r in records} == {"M001"} and len(skips) == 1


def test_scan_of_the_original_tree_gives_the_flat_ids(tmp_path):
    make_mead_set(tmp_path, actors=("M001", "W002"), emotions=("angry", "neutral"),
                  size=(32, 32), seconds=0.4, layout="tree")
    records, skips = scan_mead(MeadConfig(root=str(tmp_path)))
    assert len(skips) == 0
    assert [r.clip_id for r in records] == ["M001_front_angry_level3_001", "M001_front_neutral_level1_001",
                                            "W002_front_angry_level3_001", "W002_front_neutral_level1_001"]
    assert records[0].label == 0 and records[1].label == MEAD_EMOTIONS.index("neutral")
    only = scan_mead(MeadConfig(root=str(tmp_path), actors=["W002"], levels=[1]))[0]
    assert [r.clip_id for r in only] == ["W002_front_neutral_level1_001"]


def test_scan_refuses_a_missing_root_and_bad_settings(tmp_path):
    with pytest.raises(MeadRootError):
        scan_mead(MeadConfig(root=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="views"):
        scan_mead(MeadConfig(root=str(tmp_path), views=["sideways"]))


def test_adapter_is_video_only_and_names_give_labels(flat_set):
    adapter = get_adapter("mead")
    cfg = Config(dataset="mead")
    assert adapter.streams(cfg) == (True, False)
    assert adapter.label_names == list(MEAD_EMOTIONS)
    known = adapter.record_for_file(flat_set / "W002_front_fear_level3_001.mp4")
    assert known.extra["known"] and known.speaker == "W002" and known.label == 3
    assert not adapter.record_for_file(Path("clip.mp4")).extra["known"]
    assert adapter.speaker_groups(["M001", "W002"]) == {"gender": ["male", "female"]}
    clip = decode_clip(flat_set / "M001_front_happy_level3_001.mp4", audio=False)
    assert clip.frames.shape[1:] == (32, 32, 3) and clip.audio is None


# ------------------------------------------------------------------------------ folds


def _records(speakers):
    return [ClipRecord(f"{s}_{i}", None, i % 2, s, f"{s}_{i}", {}) for s in speakers for i in range(2)]


def test_string_speakers_make_leave_one_actor_out_folds():
    records = _records(["W011", "M030", "W009"])
    actors = record_actors(records)
    assert actors == ["M030", "W009", "W011"]
    cfg = SplitConfig(n_folds=3, val_rule="next_fold", n_val_actors=1)
    splits = [fold_split(actors, cfg, k) for k in range(3)]
    assert [(s.train, s.val, s.test) for s in splits] == [
        (["W011"], ["W009"], ["M030"]), (["M030"], ["W011"], ["W009"]), (["W009"], ["M030"], ["W011"])]
    parts = split_records(records, splits[0])
    assert {r.speaker for r in parts["test"]} == {"M030"} and len(parts["train"]) == 2


def test_numeric_speakers_keep_numeric_order_and_a_mix_is_refused():
    assert record_actors(_records(["10", "9", "1001"])) == [9, 10, 1001]
    assert actor_folds([12, 3, 7, 1], 2) == [[1, 3], [7, 12]]
    with pytest.raises(SplitError, match="mixes"):
        actor_folds(["M030", 3], 2)


# ------------------------------------------------------------------------------ face detector


def test_face_detector_choice_and_none_is_the_centre_square():
    frames = np.zeros((4, 40, 60, 3), np.uint8)
    boxes, misses = snippet_boxes(frames, snippet_indices(4, 2, 2), VideoConfig(face_detector="none"))
    assert boxes == [(10, 0, 40, 40)] * 2 and misses == 0
    with pytest.raises(ValueError, match="cropper"):
        snippet_boxes(frames, snippet_indices(4, 2, 2), VideoConfig(face_detector="mtcnn"))
    assert isinstance(build_cropper(Config()), HaarFaceDetector)
    assert build_cropper(config_from_dict({"video": {"face_detector": "none"}})) is None
    with pytest.raises(ConfigError, match="face_detector"):
        config_from_dict({"video": {"face_detector": "dlib"}})


def test_face_detector_and_train_views_change_the_cache_folder():
    base = Config()
    assert feature_config_hash(config_from_dict({"video": {"face_detector": "haar"}})) == feature_config_hash(base)
    assert feature_config_hash(config_from_dict({"video": {"face_detector": "mtcnn"}})) != feature_config_hash(base)
    assert feature_config_hash(config_from_dict({"features": {"train_views": 2}})) != feature_config_hash(base)


# ------------------------------------------------------------------------------ training views


def test_jittered_indices_stay_in_their_slices():
    rng = np.random.default_rng(0)
    idx = jittered_indices(50, 3, 4, rng)
    k = np.arange(12)
    assert idx.shape == (3, 4)
    assert np.all(idx.ravel() >= (k * 50) // 12) and np.all(idx.ravel() < ((k + 1) * 50) // 12)
    assert np.array_equal(jittered_indices(6, 2, 3, rng), snippet_indices(6, 2, 3))  # one frame a slice


def test_views_are_flipped_and_jittered_copies_of_the_centred_snippets():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (6, 20, 20, 3), dtype=np.uint8)
    cfg = VideoConfig(n_snippets=2, snippet_len=3, size=20, face_detector="none")
    centre, views, misses = snippet_views(frames, cfg, n_views=2, seed=5)
    assert len(views) == 2 and misses == 0 and centre.shape == (2, 3, 3, 20, 20)
    # 6 frames = S x L: every slice is one frame, so only the flip differs (view 1 odd: flipped).
    assert torch.allclose(views[0], centre.flip(-1)) and torch.allclose(views[1], centre)
    long = rng.integers(0, 256, (40, 20, 20, 3), dtype=np.uint8)
    c2, (v1, v2), _ = snippet_views(long, cfg, n_views=2, seed=5)
    again = snippet_views(long, cfg, n_views=2, seed=5)[1]
    assert torch.equal(v1, again[0]) and not torch.allclose(v2, c2)


def _view_entries(n=4, k=3):
    entries = []
    for i in range(n):
        base = torch.full((2, 3, 1, 1), float(i), dtype=torch.float16)
        views = torch.stack([base + 100 * (v + 1) for v in range(k)])
        entries.append({"clip_id": f"c{i}", "label": i % 2, "speaker": "M001", "extra": {},
                        "video": base, "video_views": views})
    return entries


def test_training_draws_one_view_per_epoch_deterministically_and_eval_reads_the_centre():
    data = FeatureDataset(_view_entries(), ["video"], seed=3)
    assert data.views.shape == (4, 3, 2, 3, 1, 1)

    def seen(epoch):
        data.train().set_epoch(epoch)
        return [int(data[i]["video"][0, 0, 0, 0]) // 100 for i in range(4)]

    def views(dataset):
        by_epoch = []
        for epoch in range(8):
            dataset.set_epoch(epoch)
            by_epoch.append([dataset.view_of(i) for i in range(4)])
        return by_epoch

    # the views are a function of (seed, epoch, clip) alone: a fresh dataset draws them again
    assert views(data) == views(FeatureDataset(_view_entries(), ["video"], seed=3))
    assert views(data) != views(FeatureDataset(_view_entries(), ["video"], seed=4))
    per_epoch = [seen(e) for e in range(8)]
    assert per_epoch[2] == seen(2)                       # same epoch, same views
    assert len({v for e in per_epoch for v in e}) == 4    # over epochs: centre and all 3 views
    data.set_epoch(2)
    assert seen(2) == [data.view_of(i) for i in range(4)]
    data.eval()
    assert [int(data[i]["video"][0, 0, 0, 0]) for i in range(4)] == [0, 1, 2, 3]


# ------------------------------------------------------------------------------ extract -> train


def _tiny_cfg(root: Path, tmp_path: Path, *overrides: str) -> Config:
    raw = {"name": "mead_tiny", "dataset": "mead", "mead": {"root": str(root)},
           "split": {"n_folds": 3, "val_rule": "next_fold", "n_val_actors": 1},
           "video": {"n_snippets": 2, "snippet_len": 2, "size": 32, "face_detector": "none"},
           "backbone": {"video": "mobilenet_v2", "audio": "none", "pretrained": "optional",
                        "weights_dir": str(Path(__file__).resolve().parents[2] / "resnet")},
           "features": {"cache_dir": str(tmp_path / "cache"), "batch_size": 8, "num_workers": 0,
                        "device": "cpu", "train_views": 2},
           "model": {"modalities": ["video"], "d_model": 32, "n_heads": 2, "embed_dim": 16},
           "train": {"epochs": 2, "batch_size": 8, "m_per_class": 1, "device": "cpu",
                     "runs_dir": str(tmp_path / "runs")}}
    return config_from_dict(raw, list(overrides))


def test_extract_and_train_video_only_clips_with_a_2d_encoder(flat_set, tmp_path, one_thread):
    cfg = _tiny_cfg(flat_set, tmp_path)  # real MobileNetV2 weights when in resnet/, else random
    summary = extract(cfg, progress=False)
    assert (summary.done, summary.skipped) == (24, 0)
    records = get_adapter(cfg).records(cfg)[0]
    entry = FeatureCache.for_config(cfg).get(records[0])
    assert entry["video"].shape == (2, 1280, 1, 1) and entry["video"].dtype == torch.float16
    assert entry["video_views"].shape == (2, 2, 1280, 1, 1) and "audio" not in entry
    result = run_fold(cfg, 0, tmp_path / "runs" / "mead_tiny" / "fold_0")
    assert {"test_accuracy", "val_uar"} <= set(result)
    split = (tmp_path / "runs" / "mead_tiny" / "fold_0" / "split.json").read_text()
    assert '"test": [\n      "M001"' in split or '"test": ["M001"]' in split


# ------------------------------------------------------------------------------ the real clips


def test_the_shared_mead_clips_scan_as_three_actors_by_eight_emotions():
    if not SHARED_MEAD.is_dir():
        pytest.skip(f"shared MEAD clips not found at {SHARED_MEAD}")
    records, skips = scan_mead(MeadConfig(root=str(SHARED_MEAD)))
    assert len(records) == 24 and len(skips) == 0
    assert record_actors(records) == ["M030", "W009", "W011"]
    assert sorted({r.label for r in records}) == list(range(8))


def test_shuffled_labels_permute_training_and_validation_only(flat_set, tmp_path, one_thread):
    cfg = _tiny_cfg(flat_set, tmp_path, "features.train_views=0")
    assert extract(cfg, progress=False).done == 24
    plain = fold_data(cfg, 0).parts
    mixed = fold_data(_tiny_cfg(flat_set, tmp_path, "features.train_views=0",
                                "train.shuffle_labels=true"), 0).parts
    for part in ("train", "val"):
        assert sorted(mixed[part].labels.tolist()) == sorted(plain[part].labels.tolist())
        assert not torch.equal(mixed[part].labels, plain[part].labels)
    assert torch.equal(mixed["test"].labels, plain["test"].labels)


def test_speaker_normalised_training_keeps_views_in_the_actor_s_units(flat_set, tmp_path, one_thread):
    cfg = _tiny_cfg(flat_set, tmp_path, "model.speaker_norm=true")
    assert extract(cfg, progress=False).done == 24
    train = fold_data(cfg, 0).parts["train"]
    raw = {r.clip_id: FeatureCache.for_config(cfg).get(r) for r in get_adapter(cfg).records(cfg)[0]}
    assert train.views is not None and train.views.shape[1:3] == (2, 2)   # (N, K, S, C, h, w)
    for speaker in set(train.speakers):
        rows = [i for i, s in enumerate(train.speakers) if s == speaker]
        centred = train.inputs["video"][rows]                              # (n, S, C, 1, 1)
        torch.testing.assert_close(centred.mean(dim=(0, 1)), torch.zeros_like(centred[0, 0]),
                                   atol=1e-4, rtol=0)
        # A view minus its centred item is the cached difference over the actor's std.
        cached = torch.stack([raw[train.clip_ids[i]]["video"].float() for i in rows])
        std = cached.std(dim=(0, 1), unbiased=False, keepdim=True)
        std = torch.where(std < 1e-4, torch.ones_like(std), std)       # constant: only centred
        i = rows[0]
        diff = raw[train.clip_ids[i]]["video_views"].float() - raw[train.clip_ids[i]]["video"].float()
        torch.testing.assert_close(train.views[i] - train.inputs["video"][i], diff / std[0],
                                   atol=1e-3, rtol=1e-3)
