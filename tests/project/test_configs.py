"""The shipped configs under configs/: each loads, and states only what differs from the defaults."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmer.config import Config, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["ravdess", "meld", "smoke"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.dataset == ("meld" if name == "meld" else "ravdess")


def _leaves(raw: dict, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(key path, value) of every leaf of a raw YAML mapping."""
    out = []
    for key, value in raw.items():
        path = (*prefix, key)
        out += _leaves(value, path) if isinstance(value, dict) else [(path, value)]
    return out


def _at(node: object, path: tuple[str, ...]) -> object:
    for part in path:
        node = getattr(node, part)
    return node


def _same(value: object, default: object) -> bool:
    return type(value) is type(default) and value == default if isinstance(value, bool) else value == default


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_states_only_differences(path: Path) -> None:
    """A config lists what differs from the schema defaults; ``dataset`` (the corpus the
    file is for) is the one key it always names."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    restated = [".".join(key) for key, value in _leaves(raw)
                if key != ("dataset",) and _same(value, _at(Config(), key))]
    assert not restated, f"{path.name} restates schema defaults: {', '.join(restated)}"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_loads_every_value_it_states(path: Path, tmp_path: Path) -> None:
    """Each value the file gives reaches the loaded config, and the resolved config saved
    and loaded again is the same config."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cfg = load_config(path)
    for key, value in _leaves(raw):
        assert _at(cfg, key) == value, f"{path.name}: {'.'.join(key)}"
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
