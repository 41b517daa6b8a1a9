"""The config loader: strict keys and types, overrides, round trips, older checkpoint configs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mmer.config import Config, ConfigError, config_from_dict, config_to_dict, load_config, save_config
from mmer.config.loading import saved_config


def _error(data: dict, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, overrides, source="run.yaml")
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_defaults_build() -> None:
    cfg = config_from_dict({})
    assert cfg == Config()
    assert cfg.split.n_folds == 6 and cfg.ravdess.modality == "full_av"


@pytest.mark.parametrize("data, path, suggestion", [
    ({"trian": {}}, "trian", "train"),
    ({"ravdess": {"modalty": "full_av"}}, "ravdess.modalty", "ravdess.modality"),
    ({"train": {"augment": {"tim_masks": 2}}}, "train.augment.tim_masks", "train.augment.time_masks"),
])
def test_unknown_key_gives_full_path_and_suggestion(data: dict, path: str, suggestion: str) -> None:
    message = _error(data)
    assert message.startswith(f"run.yaml: unknown key '{path}'; did you mean '{suggestion}'?")
    assert "(valid: " in message


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    message = _error({"split": {"zzzzzz": 1}})
    assert "did you mean" not in message
    assert "unknown key 'split.zzzzzz'" in message and "n_folds" in message


@pytest.mark.parametrize("data, expected", [
    ({"video": {"face_crop": False}}, "'video.face_crop' is replaced: use video.face_detector: none"),
    ({"video": {"face_crop": True}}, "'video.face_crop' is replaced: use video.face_detector: none"),
    ({"ravdess": {"visual_table": "aus.csv"}}, "'ravdess.visual_table' is replaced: use visual.table"),
    ({"ravdess": {"visual_key": "id"}}, "'ravdess.visual_key' is replaced: use visual.key"),
    ({"ravdess": {"visual_columns": ["AU*"]}}, "'ravdess.visual_columns' is replaced: use visual.columns"),
    ({"ravdess": {"visual_frames": "mean"}}, "'ravdess.visual_frames' is replaced: use visual.frames"),
    ({"ravdess": {"visual_steps": 4}}, "'ravdess.visual_steps' is replaced: use visual.steps"),
])
def test_replaced_keys_name_their_replacement(data: dict, expected: str) -> None:
    message = _error(data)
    assert message.startswith(f"run.yaml: {expected}") and "\n" not in message


@pytest.mark.parametrize("data, expected", [
    ({"train": {"epochs": "ten"}}, "train.epochs: expected int, got 'ten'"),
    ({"train": {"epochs": True}}, "train.epochs: expected int, got True"),
    ({"train": {"lr": "fast"}}, "train.lr: expected float, got 'fast'"),
    ({"video": {"face_detector": 1}}, "video.face_detector: expected one of 'haar', 'mtcnn', 'none', got 1"),
    ({"name": 3}, "name: expected str, got 3"),
    ({"ravdess": "Actors"}, "ravdess: expected a mapping (section), got 'Actors'"),
    ({"eval": {"k": 5}}, "eval.k: expected list of int, got 5"),
    ({"eval": {"k": [1, "x"]}}, "eval.k[1]: expected int, got 'x'"),
    ({"audio": {"fmax": "high"}}, "audio.fmax: expected float or null, got 'high'"),
])
def test_wrong_type_names_expected_type(data: dict, expected: str) -> None:
    assert _error(data) == f"run.yaml: {expected}"


def test_exponent_floats_from_yaml(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads 1e-3 without a dot as a string; the loader takes it as a float.
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-2\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.weight_decay == pytest.approx(0.05)
    assert "train.lr: expected float, got 'e'" in _error({"train": {"lr": "e"}})


def test_ints_widen_to_float_and_nested_sections_build() -> None:
    cfg = config_from_dict({"train": {"lr": 1, "augment": {"time_masks": 2}}, "audio": {"fmax": 8000}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.augment.time_masks == 2
    assert cfg.audio.fmax == 8000.0


@pytest.mark.parametrize("data, expected", [
    ({"ravdess": {"modality": "audio"}}, "ravdess.modality: expected one of 'full_av', "
                                         "'video_only', 'audio_only', got 'audio'"),
    ({"split": {"val_rule": "random"}}, "split.val_rule: expected one of 'last', 'first', "
                                        "'next_fold', got 'random'"),
])
def test_literal_choice_errors(data: dict, expected: str) -> None:
    assert _error(data) == f"run.yaml: {expected}"


def test_overrides_nested_lists_and_null() -> None:
    cfg = config_from_dict({"train": {"lr": 0.1}}, [
        "train.lr=1e-3", "train.augment.time_masks=2", "eval.k=[1, 3]",
        "model.late_weights=[1, 0.5]", "ravdess.actors=[2,4]", "audio.fmax=", "name=x=y",
        "ravdess.modality=audio_only"])
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.augment.time_masks == 2
    assert cfg.eval.k == [1, 3]
    assert cfg.model.late_weights == [1.0, 0.5]
    assert cfg.ravdess.actors == [2, 4]
    assert cfg.audio.fmax is None
    assert cfg.name == "x=y"
    assert cfg.ravdess.modality == "audio_only"


def test_overrides_are_checked_like_files() -> None:
    assert "unknown key 'train.epoch'; did you mean 'train.epochs'?" in _error({}, ("train.epoch=3",))
    assert "ravdess.modality: expected one of" in _error({}, ("ravdess.modality=audio",))
    assert "eval.k[1]: expected int, got 'x'" in _error({}, ("eval.k=[1, x]",))
    with pytest.raises(ConfigError, match="override 'train.lr': expected key.path=value"):
        config_from_dict({}, ["train.lr"])
    with pytest.raises(ConfigError, match="override 'name.x=1': 'name' is not a section"):
        config_from_dict({"name": "run"}, ["name.x=1"])


def test_overrides_leave_the_input_dict_alone() -> None:
    data = {"train": {"lr": 0.1}}
    config_from_dict(data, ["train.lr=0.5", "eval.k=[1]"])
    assert data == {"train": {"lr": 0.1}}


def test_save_config_round_trip(tmp_path: Path) -> None:
    cfg = config_from_dict({}, ["name=round", "ravdess.actors=[1, 2, 3]", "eval.k=[1, 7]",
                                "train.augment.mixup_alpha=0.4", "audio.fmax=7600"])
    path = tmp_path / "run" / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert not [p for p in path.parent.iterdir() if p.name != "config.yaml"]  # no temp files left
    changed = dataclasses.replace(cfg, name="other")
    assert load_config(path) != changed


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"{missing}: cannot read config file"):
        load_config(missing)
    with pytest.raises(ConfigError, match=f"{tmp_path}: cannot read config file"):
        load_config(tmp_path)  # a folder: unreadable as a file, even for root
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="list.yaml: the top level must be a mapping"):
        load_config(top)
    typo = tmp_path / "typo.yaml"
    typo.write_text("split:\n  n_fold: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'split.n_fold'; did you mean "
                                          r"'split.n_folds'\?"):
        load_config(typo)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    assert load_config(empty, ["split.fold=2"]) == dataclasses.replace(
        Config(), split=dataclasses.replace(Config().split, fold=2))


def test_a_checkpoint_config_of_the_older_schema_maps_to_the_current_keys() -> None:
    """A checkpoint's saved config with video.face_crop and ravdess.visual_* reads as the
    same run under video.face_detector and visual.*; a config file giving them is refused."""
    old = config_to_dict(Config())
    del old["visual"]
    old["video"]["face_crop"] = False
    old["ravdess"].update(visual_table="aus.csv", visual_key="clip", visual_columns=["AU*"],
                          visual_frames="sequence", visual_steps=4)
    cfg = config_from_dict(saved_config(old), source="checkpoint config")
    assert cfg.video.face_detector == "none"
    assert (cfg.visual.table, cfg.visual.key, cfg.visual.columns, cfg.visual.frames, cfg.visual.steps) == (
        "aus.csv", "clip", ["AU*"], "sequence", 4)
    old["video"]["face_crop"] = True
    old["video"]["face_detector"] = "mtcnn"
    assert config_from_dict(saved_config(old)).video.face_detector == "mtcnn"
    with pytest.raises(ConfigError, match="' is replaced: use "):
        config_from_dict(old)


@pytest.mark.parametrize(("text", "finetune"), [
    ({"encoder": "scratch"}, {"top_blocks": 2}),
    ({"finetune": True}, {"top_blocks": 2}),
    ({}, {"top_blocks": -1}),
    ({}, {"top_blocks": "some"}),
    ({}, {"top_blocks": 2, "layer_decay": 0.0}),
])
def test_finetune_section_refuses_what_it_cannot_train(text: dict, finetune: dict) -> None:
    with pytest.raises(ConfigError, match="finetune"):
        config_from_dict({"dataset": "meld", "model": {"modalities": ["text"]}, "text": text,
                          "finetune": finetune})
    ok = config_from_dict({"dataset": "meld", "text": {"encoder": "mpnet"}, "finetune": {"top_blocks": "all"}})
    assert ok.finetune.top_blocks == "all" and ok.text.encoder == "mpnet"
