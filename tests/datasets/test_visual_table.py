"""Precomputed visual feature tables: the trial join, listings, bad tables, the shared AU table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.config import RavdessConfig, VisualConfig, config_from_dict
from mmer.datasets.ravdess import RavdessAdapter, parse_name, record_from_name
from mmer.datasets.records import ClipRecord
from mmer.datasets.visual_table import (
    VisualTableError,
    clip_vector,
    join_table,
    read_visual_table,
    visual_features,
)
from mmer.inputs.builder import visual_features_of

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


AUS = SHARED / "data" / "ravdess-facial-aus" / "ravdess_av_speech_aus_actors01-16.csv"


SPEECH = SHARED / "data" / "ravdess-speech-audio"


TRIAL = RavdessAdapter().visual_join_key


def records(*names: str) -> list:
    return [record_from_name(Path(f"/nowhere/{n}"), parse_name(n)) for n in names]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join(",".join(str(v) for v in r) for r in [header, *rows]) + "\n",
                    encoding="utf-8")
    return path


def test_av_row_joins_the_audio_only_clip_of_the_same_trial(tmp_path):
    table = write_csv(tmp_path / "aus.csv", ["AU01_r", "AU02_c", "name"], [
        [0.5, 1.0, "01-01-03-01-02-01-12"],   # trial 01-03-01-02-01-12
        [2.0, 0.0, "01-01-05-02-01-02-07"],
    ])
    cfg = VisualConfig(table=str(table))
    recs = records("03-01-05-02-01-02-07.flac", "03-01-03-01-02-01-12.wav")
    feats, listing = visual_features(cfg, recs, join=TRIAL)
    assert set(feats) == {"03-01-05-02-01-02-07", "03-01-03-01-02-01-12"}
    torch.testing.assert_close(feats["03-01-03-01-02-01-12"], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(feats["03-01-05-02-01-02-07"], torch.tensor([2.0, 0.0]))
    assert len(listing) == 0
    # Another actor or another repetition is another trial: no match.
    feats, _ = visual_features(cfg, records("03-01-03-01-02-01-11.wav", "03-01-03-01-02-02-12.wav"), join=TRIAL)
    assert feats == {}


def test_clips_without_a_row_and_rows_without_a_clip_are_listed(tmp_path):
    table = write_csv(tmp_path / "aus.csv", ["name", "AU01_r"], [
        ["01-01-03-01-02-01-12", 1.0], ["01-01-04-01-02-01-12", 2.0], ["01-01-01-01-01-01-20", 3.0]])
    cfg = VisualConfig(table=str(table))
    recs = records("03-01-03-01-02-01-12.wav", "03-01-04-01-02-01-12.wav", "03-01-05-01-02-01-12.wav")
    feats, listing = visual_features(cfg, recs, join=TRIAL)
    assert sorted(feats) == ["03-01-03-01-02-01-12", "03-01-04-01-02-01-12"]
    items = {s.item: s.reason for s in listing}
    assert "no row of trial 01-05-01-02-01-12" in items["03-01-05-01-02-01-12"]
    assert "matches no clip" in items[f"{table}:01-01-01-01-01-01-20"]
    assert len(items) == 2
    _, quiet = visual_features(cfg, recs, join=TRIAL, list_unused=False)   # a subset on purpose
    assert [s.item for s in quiet] == ["03-01-05-01-02-01-12"]


def test_columns_by_name_and_prefix_and_frames_mean_or_sequence(tmp_path):
    header = ["frame", "name", "AU01_r", "AU02_r", "AU01_c", "pose_Rx"]
    rows = [[i, "01-01-02-01-01-01-03", i, 10 * i, 1, 0.1] for i in range(4)]
    table = read_visual_table(write_csv(tmp_path / "frames.csv", header, rows), columns=["AU*", "pose_Rx"], join=TRIAL)
    assert table.columns == ["AU01_r", "AU02_r", "AU01_c", "pose_Rx"]
    frames = table.rows["01-02-01-01-01-03"]
    assert frames.shape == (4, 4)
    torch.testing.assert_close(clip_vector(frames, "mean", 8), torch.tensor([1.5, 15.0, 1.0, 0.1]))
    seq = clip_vector(frames, "sequence", 2)
    assert seq.shape == (2, 4) and seq[:, 0].tolist() == [1.0, 3.0]
    assert clip_vector(frames, "sequence", 6)[:, 0].tolist() == [0, 1, 1, 2, 3, 3]  # repeats in order
    assert read_visual_table(tmp_path / "frames.csv", columns=["AU01_r"], join=TRIAL).columns == ["AU01_r"]


@pytest.mark.parametrize("header,rows,message", [
    (["clip", "AU01_r"], [["01-01-03-01-02-01-12", 1]], r"no key column 'name'"),
    (["name", "AU01_r"], [["01-01-03-01-02-01-12", "high"]], r"line 2, column 'AU01_r': value 'high'"),
    (["name", "AU01_r"], [["01-01-03-01-02-01-12", ""]], r"line 2, column 'AU01_r': value ''"),
    (["name", "AU01_r"], [["01-01-03-01-02-01-12", "nan"]], "not a finite number"),
    (["name", "AU01_r"], [["clip_12", 1]], r"line 2: key 'clip_12' is not a clip id of this corpus"),
    (["name", "AU01_r"], [["01-01-03-01-02-01-12", 1, 2]], r"line 2: 3 fields, the header has 2"),
    (["name", "AU01_r"], [["01-01-03-01-02-01-12", 1], ["02-01-03-01-02-01-12", 1]], "same trial"),
    (["name", "AU01_r"], [], "no data rows"),
])
def test_bad_tables_name_the_file_and_the_problem(tmp_path, header, rows, message):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(VisualTableError, match=message) as err:
        read_visual_table(path, join=TRIAL)
    assert str(path) in str(err.value)


def test_missing_file_or_columns_are_named(tmp_path):
    with pytest.raises(VisualTableError, match="cannot read"):
        read_visual_table(tmp_path / "absent.csv")
    path = write_csv(tmp_path / "t.csv", ["name", "AU01_r"], [["01-01-03-01-02-01-12", 1]])
    with pytest.raises(VisualTableError, match="no column matches 'gaze\\*'"):
        read_visual_table(path, columns=["gaze*"])
    with pytest.raises(VisualTableError, match="visual.table is not set"):
        visual_features(VisualConfig(), records("03-01-03-01-02-01-12.wav"))


def test_any_corpus_joins_its_rows_by_clip_id(tmp_path):
    """The visual section is the corpus's own: CREMA-D rows join by clip id, and the
    RAVDESS trial rule does not apply there (a 01- row does not join a 03- clip)."""
    table = write_csv(tmp_path / "aus.csv", ["name", "AU01_r"], [
        ["1001_DFA_ANG_XX.flv", 0.5], ["1002_IEO_SAD_HI", 2.0], ["01-01-03-01-02-01-12", 7.0]])
    cfg = config_from_dict({"dataset": "crema_d", "visual": {"table": str(table)}})
    recs = [ClipRecord(c, Path(f"/nowhere/{c}.flv"), 0, c[:4], c) for c in
            ("1001_DFA_ANG_XX", "1002_IEO_SAD_HI", "1003_ITS_HAP_MD", "03-01-03-01-02-01-12")]
    feats, listing = visual_features_of(cfg, recs)
    assert sorted(feats) == ["1001_DFA_ANG_XX", "1002_IEO_SAD_HI"]
    torch.testing.assert_close(feats["1002_IEO_SAD_HI"], torch.tensor([2.0]))
    assert sorted(s.item for s in listing) == sorted(
        ["03-01-03-01-02-01-12", "1003_ITS_HAP_MD", f"{table}:01-01-03-01-02-01-12"])
    ravdess = config_from_dict({"visual": {"table": str(table)}})
    with pytest.raises(VisualTableError, match="line 2: key '1001_DFA_ANG_XX' is not a clip id"):
        visual_features_of(ravdess, recs)


@pytest.mark.shared
def test_shared_aus_join_every_shared_speech_file():
    if not AUS.is_file() or not SPEECH.is_dir():
        pytest.skip(f"shared data not found under {SHARED}")
    from mmer.datasets.ravdess import scan_ravdess
    recs, _ = scan_ravdess(RavdessConfig(root=str(SPEECH), modality="audio_only"))
    feats, listing = join_table(recs, read_visual_table(AUS, join=TRIAL), VisualConfig())
    assert len(recs) == 960 and len(feats) == 960 and len(listing) == 0
    assert next(iter(feats.values())).shape == (35,)
    assert np.isfinite(torch.stack(list(feats.values())).numpy()).all()
