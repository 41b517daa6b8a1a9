"""``python -m mmer.results``: tables made from run folders, numbers equal to the fold values."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmer.cli.results import config_hash, main

METRIC = {"uar": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0}
CONFIG = {"dataset": "ravdess", "split": {"n_folds": 4, "val_rule": "next_fold", "n_val_actors": 4, "fold": 0},
          "model": {"speaker_norm": True, "ensemble": 1}, "train": {"refit": False, "seed": 0, "lr": 1e-3}}
GIT = {"sha": "0123456789abcdef", "date": "2026-12-01T10:00:00+00:00", "dirty": False}


def _fake_run(root: Path, name: str, accs: list[float], *, seed: int, lr: float = 1e-3,
              val_accs: list[float] | None = None) -> Path:
    """A run folder whose fold reports hold the softmax accuracies `accs` (UAR = acc / 2) on
    test, and `val_accs` on the validation part when given."""
    config = json.loads(json.dumps(CONFIG))
    config["train"].update(seed=seed, lr=lr)
    for fold, acc in enumerate(accs):
        softmax = dict(METRIC, accuracy=acc, uar=acc / 2)
        report = {"fold": fold, "config": config, "git": GIT,
                  "results": {"test": {"softmax": softmax, "knn": {"5": dict(METRIC, accuracy=1 - acc)}}}}
        if val_accs is not None:
            report["results"]["val"] = {"softmax": dict(METRIC, accuracy=val_accs[fold], uar=val_accs[fold] / 2),
                                        "knn": {"5": dict(METRIC, accuracy=0.0)}}
        (root / name / f"fold_{fold}").mkdir(parents=True)
        (root / name / f"fold_{fold}" / "report.json").write_text(json.dumps(report))
    return root / name


def _row(table: str, first_cell: str) -> list[str]:
    line = next(x for x in table.splitlines() if x.startswith(f"| {first_cell}"))
    return [c.strip() for c in line.strip("|").split("|")]


def _pct(values) -> str:
    arr = 100 * np.asarray(values)
    return f"{arr.mean():.1f} ± {arr.std(ddof=1):.1f}"


def test_runs_differing_only_by_seed_are_grouped(tmp_path):
    runs = [_fake_run(tmp_path, "a", [0.50, 0.70], seed=0), _fake_run(tmp_path, "b", [0.60, 0.90], seed=1),
            _fake_run(tmp_path, "c", [0.10, 0.20], seed=0, lr=3e-4)]
    out = tmp_path / "table.md"
    assert main([*map(str, runs), "--out", str(out)]) == 0
    table = out.read_text()
    header = _row(table, "run")
    assert header == ["run", "seed", "part", "protocol", "accuracy", "UAR", "kNN k=5 accuracy", "config", "commit"]
    a = dict(zip(header, _row(table, "`a`"), strict=True))
    assert a["accuracy"] == _pct([0.5, 0.7]) == "60.0 ± 14.1"
    assert a["UAR"] == _pct([0.25, 0.35]) and a["kNN k=5 accuracy"] == _pct([0.5, 0.3])
    assert a["protocol"] == "2 of 4 folds, val next_fold (4 actors), speaker norm on, refit off"
    assert a["commit"] == "0123456789 (2026-12-01)" and a["seed"] == "0"
    group = dict(zip(header, _row(table, "seeds of `a`, `b`"), strict=True))
    assert group["accuracy"] == _pct([0.6, 0.75])             # over the two seeds' means
    assert group["config"] == a["config"] == f"`{config_hash(CONFIG)}`"
    assert config_hash(dict(CONFIG, train=dict(CONFIG["train"], seed=7))) == config_hash(CONFIG)
    c = dict(zip(header, _row(table, "`c`"), strict=True))
    assert c["config"] != a["config"]                          # another lr: its own config, no group
    assert sum(line.startswith("| seeds of") for line in table.splitlines()) == 1


def test_the_validation_part_on_request(tmp_path, capsys):
    run = _fake_run(tmp_path, "a", [0.50, 0.70], seed=0, val_accs=[0.8, 0.9])
    out = tmp_path / "val.md"
    assert main([str(run), "--part", "val", "--out", str(out)]) == 0
    header = _row(out.read_text(), "run")
    row = dict(zip(header, _row(out.read_text(), "`a`"), strict=True))
    assert row["part"] == "val" and row["accuracy"] == _pct([0.8, 0.9]) and row["UAR"] == _pct([0.4, 0.45])
    assert main([str(run), "--out", str(out)]) == 0                 # the default stays test
    assert dict(zip(header, _row(out.read_text(), "`a`"), strict=True))["accuracy"] == _pct([0.5, 0.7])
    no_val = _fake_run(tmp_path, "b", [0.5, 0.6], seed=1)
    assert main([str(no_val), "--part", "val"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fold 0, 1 has no val part" in err and str(no_val) in err


def test_a_run_without_fold_reports_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "bare" / "fold_0").mkdir(parents=True)
    assert main([str(tmp_path / "bare")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "bare") in err and "evaluate.py --run" in err


@pytest.mark.slow
def test_table_of_a_trained_run_equals_its_fold_values(tiny_run, tmp_path):
    import evaluate

    if not (tiny_run.run_dir / "fold_2" / "report.json").is_file():
        assert evaluate.main(["--run", str(tiny_run.run_dir), "--no-plots"]) == 0
    out = tmp_path / "tiny.md"
    assert main([str(tiny_run.run_dir), "--out", str(out), "--knn", "3"]) == 0
    table = out.read_text()
    row = dict(zip(_row(table, "run"), _row(table, "`tiny`"), strict=True))
    # train.py's own summary scored the same best.pt on the same test folds.
    folds = json.loads((tiny_run.run_dir / "summary.json").read_text())["folds"]
    assert row["accuracy"] == _pct([folds[str(f)]["test_accuracy"] for f in range(3)])
    assert row["UAR"] == _pct([folds[str(f)]["test_uar"] for f in range(3)])
    assert row["protocol"] == "3 of 3 folds, val next_fold (1 actors), speaker norm off, refit off"
    head = subprocess.run(["git", "log", "-1", "--format=%H %cI"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.split()
    assert row["commit"].startswith(head[0][:10]) and row["commit"].endswith(f"({head[1][:10]})")


def test_a_corpus_scored_on_dev_gets_its_weighted_f1_columns(tmp_path):
    config = {"dataset": "meld", "split": {}, "model": {}, "train": {"seed": 3}}
    for fold, (emo, sent) in enumerate([(0.571, 0.682)]):
        head = dict(METRIC, accuracy=0.6, macro_f1=0.38, weighted_f1=emo)
        report = {"fold": fold, "config": config, "git": GIT,
                  "results": {"val": {"softmax": head, "extra": {"sentiment": dict(METRIC, accuracy=0.7,
                                                                                    weighted_f1=sent)}}}}
        (tmp_path / "meld" / f"fold_{fold}").mkdir(parents=True)
        (tmp_path / "meld" / f"fold_{fold}" / "report.json").write_text(json.dumps(report))
    out = tmp_path / "meld.md"
    assert main([str(tmp_path / "meld"), "--out", str(out)]) == 0
    table = out.read_text()
    row = dict(zip(_row(table, "run"), _row(table, "`meld`"), strict=True))
    assert (row["part"], row["emotion wF1"], row["sentiment wF1"], row["macro-F1"]) == ("val", "57.1", "68.2", "38.0")
    assert row["protocol"] == "fixed train/dev/test split, speaker norm off, refit off" and row["seed"] == "3"


def _add_probe(run: Path, accs: list[float]) -> None:
    for fold, acc in enumerate(accs):
        path = run / f"fold_{fold}" / "report.json"
        report = json.loads(path.read_text())
        report["results"]["test"]["probe"] = dict(METRIC, accuracy=acc, uar=acc / 4)
        path.write_text(json.dumps(report))


def test_a_run_with_the_probe_gets_its_row(tmp_path):
    runs = [_fake_run(tmp_path, "a", [0.50, 0.70], seed=0), _fake_run(tmp_path, "b", [0.60, 0.90], seed=1)]
    _add_probe(runs[0], [0.40, 0.30])
    out = tmp_path / "table.md"
    assert main([*map(str, runs), "--out", str(out)]) == 0
    table = out.read_text()
    header = _row(table, "run")
    probe = dict(zip(header, _row(table, "`a` linear probe"), strict=True))
    assert probe["accuracy"] == _pct([0.4, 0.3]) and probe["UAR"] == _pct([0.1, 0.075])
    assert probe["kNN k=5 accuracy"] == "-" and probe["seed"] == "0"
    assert dict(zip(header, _row(table, "`a` |"), strict=True))["accuracy"] == _pct([0.5, 0.7])
    assert "`b` linear probe" not in table                     # b's reports hold no probe
    assert "seeds of `a`, `b` linear probe" not in table       # nor a probe row over seeds
    _add_probe(runs[1], [0.20, 0.60])
    assert main([*map(str, runs), "--out", str(out)]) == 0
    group = dict(zip(header, _row(out.read_text(), "seeds of `a`, `b` linear probe"), strict=True))
    assert group["accuracy"] == _pct([0.35, 0.4])
