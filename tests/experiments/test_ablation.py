"""python -m mmer.ablation on a tiny synthetic audio + AU set: every variant trains and is
scored, unmatched clips/rows are listed in the run folder, the visual standardisation comes
from the training actors alone, a rerun reuses finished variants, and a trained run scores
another root of actors with its own AU table."""
from __future__ import annotations

import json

import numpy as np
import pytest

import evaluate
from mmer.cli import ablation
from mmer.config import load_config
from mmer.run.folder import load_checkpoint, model_from_checkpoint, read_fold_probe
from mmer.train.data import fold_data
from mmer.train.probe import probe_fold_data
from tests.helpers.ablation import MISSING, UNUSED, make_set, tiny_args, tiny_data, trial

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ablated(tmp_path_factory):
    with tiny_data(tmp_path_factory, "ablation") as (root, audio, table):
        args = tiny_args(root, audio, table)
        assert ablation.main([*args, "--extract"]) == 0
        yield root, args, table


def test_every_variant_is_trained_and_scored(ablated):
    root, _, _ = ablated
    out = root / "runs" / "ravdess_av_aus_ablation"
    result = json.loads((out / "ablation.json").read_text())
    names = [v["variant"] for v in result["variants"]]
    assert names == ["audio", "visual", "fused_cross_attention", "fused_concat", "fused_late"]
    for v in result["variants"]:
        assert v["scores"]["folds"] == [0, 1]
        reports = [json.loads((out / v["variant"] / f"fold_{k}" / "report.json").read_text())["results"]["test"]
                   for k in (0, 1)]
        for method, part in (("softmax head", lambda r: r["softmax"]), ("kNN k=3", lambda r: r["knn"]["3"])):
            for metric, field in (("accuracy", "accuracy"), ("UAR", "uar")):
                key = f"{method} / {metric}"
                per_fold = [part(r)[field] for r in reports]   # the variant's own fold reports
                assert v["scores"]["mean"][key] == pytest.approx(np.mean(per_fold))
                assert v["scores"]["std"][key] == pytest.approx(np.std(per_fold, ddof=1))
    table = (out / "ablation.md").read_text()
    assert all(f"| {n} |" in table for n in names)
    assert "audio+visual | late" in table


def test_unmatched_clips_and_rows_are_listed_in_the_run_folder(ablated):
    root, _, table = ablated
    skipped = (root / "runs" / "ravdess_av_aus_ablation" / "visual" / "fold_0" / "skipped.tsv").read_text()
    assert MISSING in skipped and f"{table}:{UNUSED}" in skipped
    split = json.loads((root / "runs" / "ravdess_av_aus_ablation" / "visual" / "fold_0" / "split.json").read_text())
    clips = [c for part in split["clips"].values() for c in part]
    assert MISSING not in clips and len(clips) == 4 * 8 - 1


@pytest.mark.parametrize("variant", ["visual", "fused_concat"])
def test_visual_standardisation_comes_from_the_training_actors_only(ablated, variant):
    root, _, table = ablated
    ckpt = load_checkpoint(root / "runs" / "ravdess_av_aus_ablation" / variant / "fold_0" / "best.pt")
    model, _ = model_from_checkpoint(ckpt)
    train_actors = set(ckpt["split"]["actors"]["train"])
    assert train_actors.isdisjoint({1, 2})   # fold 0 tests actors 1-2
    lines = [r.split(",") for r in table.read_text().splitlines()[1:]]
    train_rows = np.array([[float(v) for v in r[1:]] for r in lines if int(r[0][-2:]) in train_actors])
    all_rows = np.array([[float(v) for v in r[1:]] for r in lines])
    mean = model.norms["visual"].mean.numpy()
    np.testing.assert_allclose(mean, train_rows.mean(axis=0), atol=1e-4)
    # Had the test actors' rows (offset by +100) leaked in, the mean would be far higher.
    assert np.all(np.abs(mean - all_rows.mean(axis=0)) > 10)


def test_a_rerun_reuses_finished_variants(ablated, monkeypatch):
    root, args, _ = ablated
    import mmer.train.loop

    def refuse(*a, **k):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr(mmer.train.loop, "train_fold", refuse)
    before = (root / "runs" / "ravdess_av_aus_ablation" / "ablation.json").read_text()
    assert ablation.main([*args, "--variants", "late,visual"]) == 0
    after = (root / "runs" / "ravdess_av_aus_ablation" / "ablation.json").read_text()
    assert json.loads(after) == json.loads(before)
    # --table-only tabulates finished variants even under another config, training nothing.
    (root / "runs" / "ravdess_av_aus_ablation" / "ablation.json").unlink()
    assert ablation.main([*args, "--set", "train.lr=0.5", "--table-only"]) == 0
    after = (root / "runs" / "ravdess_av_aus_ablation" / "ablation.json").read_text()
    assert json.loads(after) == json.loads(before)


def test_a_trained_run_scores_another_root_with_its_own_table(ablated):
    root, _, _ = ablated
    other_audio, other_table = make_set(root / "other", range(5, 7), seed=1)
    run = root / "runs" / "ravdess_av_aus_ablation" / "fused_cross_attention"
    assert evaluate.main(["--run", str(run), "--data-root", str(other_audio), "--data-set",
                          f"visual.table={other_table}", "--extract", "--no-plots"]) == 0
    reports = sorted(run.glob("fold_0/eval_*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["n_clips"]["test"] == 2 * 8   # actors 5-6: every clip has a row there
    assert all(c.endswith(("-05", "-06")) for c in report["clips"]["test"])


def test_another_root_without_its_table_is_one_line(ablated, caplog):
    """Without --data-set visual.table=..., the run's own table has no row for the
    other actors: one line naming the table and the fix, not a warning per row."""
    root, _, table = ablated
    other_audio, _ = make_set(root / "other_no_table", range(5, 7), seed=1)
    run = root / "runs" / "ravdess_av_aus_ablation" / "fused_cross_attention"
    assert evaluate.main(["--run", str(run), "--data-root", str(other_audio), "--extract", "--no-plots"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(table) in errors[0] and "--data-set visual.table=" in errors[0]
    assert sum(r.levelname == "WARNING" for r in caplog.records) < 20


def test_predict_one_clip_with_a_visual_table_model(ablated, capsys):
    """The input builder joins the AU row to a clip predict featurises now (issue: predict
    used to fail on every model that reads a visual table)."""
    from mmer.cli.predict import main as predict_main

    root, _, _ = ablated
    run = root / "runs" / "ravdess_av_aus_ablation" / "fused_late"
    clip = root / "data" / "Actors" / "Actor_01" / f"{trial(3, 1, 1, 3)}.wav"
    assert predict_main([str(clip), "--run", str(run), "--k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["true_label"] == "happy" and len(out["knn"]["neighbours"]) == 2
    assert abs(sum(out["probabilities"].values()) - 1.0) < 1e-4
    no_row = root / "data" / "Actors" / "Actor_04" / f"{MISSING}.wav"
    assert predict_main([str(no_row), "--run", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no row for this clip in the visual table" in err[0]


def test_every_variant_carries_its_linear_probe(ablated):
    root, _, _ = ablated
    out = root / "runs" / "ravdess_av_aus_ablation"
    result = json.loads((out / "ablation.json").read_text())
    header = next(x for x in (out / "ablation.md").read_text().splitlines() if x.startswith("| variant"))
    assert "linear probe / accuracy" in header and "linear probe / UAR" in header
    for v in result["variants"]:
        # Each variant's probe reads that variant's inputs only, and its fold files give the figures.
        accs = [read_fold_probe(out / v["variant"] / f"fold_{k}")["results"]["test"]["accuracy"] for k in (0, 1)]
        assert v["scores"]["mean"]["linear probe / accuracy"] == pytest.approx(np.mean(accs))
        assert v["scores"]["std"]["linear probe / accuracy"] == pytest.approx(np.std(accs, ddof=1))
    for name in ("audio", "visual"):  # the probe of the variant's own inputs, called directly
        cfg = load_config(out / name / "fold_0" / "config.yaml")
        _, direct = probe_fold_data(fold_data(cfg, 0), "uar")
        assert read_fold_probe(out / name / "fold_0")["results"]["test"]["accuracy"] == direct.metrics["accuracy"]
