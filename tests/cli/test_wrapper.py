"""The one CLI wrapper: exit codes, one-line messages, interrupts, and real bugs left visible."""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmer.cli import add_config_args, load_args_config, run_command
from mmer.cli.extract import main as extract_main
from mmer.cli.survey import main as survey_main
from mmer.cli.train import main as train_main
from mmer.datasets import ADAPTERS, get_adapter
from mmer.errors import BadInput, ConfigError, TrainingStopped

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
# [project.scripts] of pyproject.toml (read by hand: tomllib needs Python 3.11).
_SECTION = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', _SECTION, flags=re.M))
COMMANDS = ("train", "extract", "evaluate", "predict", "survey", "weights", "synthetic", "demo",
            "ablation", "faces", "results", "probe")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmer-test")
    add_config_args(parser, required=False)
    return parser


@pytest.mark.parametrize(("error", "code"), [(BadInput("x.mp4: broken"), 2), (ConfigError("k: bad"), 2),
                                             (TrainingStopped("loss is nan"), 1), (KeyboardInterrupt(), 130)])
def test_outcomes_map_to_exit_codes(error: BaseException, code: int, capsys, caplog) -> None:
    def body(args: argparse.Namespace) -> int:
        raise error

    caplog.set_level(logging.ERROR)
    assert run_command(_parser(), body, [], interrupted="kept: nothing; rerun to resume") == code
    if code == 130:
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["mmer-test: interrupted; kept: nothing; rerun to resume"]
    else:
        assert str(error) in caplog.text


def test_a_bug_keeps_its_traceback() -> None:
    def body(args: argparse.Namespace) -> int:
        return [][1]  # IndexError: a programming error, not bad input

    with pytest.raises(IndexError):
        run_command(_parser(), body, [])


def test_plain_errors_print_one_line(capsys) -> None:
    def body(args: argparse.Namespace) -> int:
        raise BadInput("clip.mp4: no audio stream")

    assert run_command(_parser(), body, [], plain_errors=True) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: clip.mp4: no audio stream"]


@pytest.mark.parametrize("main", [train_main, extract_main, survey_main])
def test_bad_set_yaml_is_one_line_naming_the_key(main, caplog, capsys) -> None:
    caplog.set_level(logging.ERROR)
    assert main(["--config", SMOKE, "--set", "train.lr=["]) == 2
    said = caplog.text + capsys.readouterr().err
    assert "train.lr" in said and "not valid YAML" in said and "Traceback" not in said


def test_non_utf8_config_names_the_file(tmp_path: Path, caplog) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes("name: caf\xe9\n".encode("latin-1"))
    caplog.set_level(logging.ERROR)
    assert train_main(["--config", str(config)]) == 2
    assert str(config) in caplog.text and "not UTF-8" in caplog.text


def test_unknown_dataset_lists_the_registry(tmp_path: Path, caplog) -> None:
    with pytest.raises(ConfigError, match="valid: crema_d, mead, meld, ravdess"):
        get_adapter("iemocap")
    args = _parser().parse_args(["--config", SMOKE, "--set", "dataset=iemocap"])
    with pytest.raises(ConfigError, match="dataset"):
        load_args_config(args)
    assert sorted(ADAPTERS) == ["crema_d", "mead", "meld", "ravdess"]


def test_installed_package_runs_from_any_folder(tmp_path: Path) -> None:
    try:
        importlib.metadata.distribution("mmer")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mmer is not pip-installed here (make install does pip install -e .)")
    done = subprocess.run([sys.executable, "-m", "mmer.survey", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--config" in done.stdout


def test_every_command_has_an_entry_point_and_a_shim() -> None:
    """mmer-<command> and ``python -m mmer.<command>`` (``python train.py``, ``python
    evaluate.py``) run the same main."""
    assert set(SCRIPTS) == {f"mmer-{c}" for c in COMMANDS}
    for name, target in SCRIPTS.items():
        command = name.removeprefix("mmer-")
        shim = ROOT / f"{command}.py" if command in ("train", "evaluate") else ROOT / "mmer" / f"{command}.py"
        module, func = target.split(":")
        assert f"from {module} import {func}\n" in shim.read_text(encoding="utf-8"), shim
    assert not (ROOT / "mmer" / "inspect.py").exists()   # it would shadow the standard library


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_entry_point_target_answers_help(name: str, capsys) -> None:
    module, func = SCRIPTS[name].split(":")
    main = getattr(importlib.import_module(module), func)
    try:
        code = main(["--help"])
    except SystemExit as done:
        code = done.code
    assert code == 0
    assert "usage:" in capsys.readouterr().out
