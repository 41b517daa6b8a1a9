"""MELD CSVs: mixed encodings, UTF-16 and NUL bytes, missing columns, records and missing clips,
the real files."""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pytest

from mmer.config import MeldConfig
from mmer.datasets.meld import (
    MELD_COLUMNS,
    MELD_EMOTIONS,
    MELD_SENTIMENTS,
    MeldError,
    class_counts,
    decode_mixed,
    fix_mojibake,
    meld_records,
    parse_time,
    read_meld_csv,
)

HEADER = ",".join(MELD_COLUMNS).encode()


def _row(sr: int, text: bytes, emotion: str, sentiment: str, dia: int, utt: int,
         speaker: bytes = b"Joey") -> bytes:
    return (f"{sr},".encode() + text + b"," + speaker
            + f',{emotion},{sentiment},{dia},{utt},3,7,"00:01:0{utt},500","0:01:0{utt + 1},25"'.encode())


def _write_csv(path: Path, rows: list[bytes], header: bytes = HEADER) -> Path:
    path.write_bytes(b"\r\n".join([header, *rows]) + b"\r\n")
    return path


def test_label_orders_are_fixed() -> None:
    assert MELD_EMOTIONS == ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
    assert MELD_SENTIMENTS == ("negative", "neutral", "positive")


@pytest.mark.parametrize("raw, text", [
    (b"I don\x92t know", "I don’t know"),                         # cp1252 apostrophe byte
    (b"\x93Hi\x94 \x85 it\xe2\x80\x99s", "“Hi” … it’s"),            # cp1252 beside UTF-8
    (b"it\xc3\xa2\xe2\x82\xac\xe2\x84\xa2s", "it’s"),               # mojibake 'itâ€™s'
    (b"\xc3\xa2\xe2\x82\xac\xc5\x93Hi\xc3\xa2\xe2\x82\xac\xc2\x9d", "“Hi”"),  # 'â€œHiâ€\x9d'
    (b"\xef\xbb\xbfcaf\xc3\xa9", "café"),                           # BOM dropped
])
def test_decode_mixed_repairs(raw: bytes, text: str) -> None:
    assert decode_mixed(raw) == text


@pytest.mark.parametrize("text", ["naïve café, Señor — “quoted” … it’s", "10 × 2 °C, ¿qué?",
                                  "plain ascii, with \"quotes\"", "Â", "é’’ ok"])
def test_ordinary_text_is_untouched(text: str) -> None:
    assert decode_mixed(text.encode("utf-8")) == text
    assert fix_mojibake(text) == text


def test_double_mojibake_is_undone() -> None:
    once = "it’s".encode().decode("cp1252")
    twice = once.encode("utf-8").decode("cp1252")
    assert fix_mojibake(twice) == "it’s"


@pytest.mark.parametrize("stamp, seconds", [("00:16:16,059", 976.059), ("0:05:52,435", 352.435),
                                            ("1:00:00,5", 3600.5), ("00:00:01.25", 1.25)])
def test_parse_time(stamp: str, seconds: float) -> None:
    assert parse_time(stamp) == pytest.approx(seconds)


@pytest.mark.parametrize("stamp", ["", "12:00", "00:61:00,000", "aa:bb:cc,ddd"])
def test_parse_time_refuses(stamp: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_time(stamp)


def test_read_csv_with_cp1252_bytes(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "train_sent_emo.csv", [
        _row(1, b"\"Oh, I don\x92t think so.\"", "joy", "positive", 0, 0),
        _row(2, b"\"She said \"\"no\"\", caf\xc3\xa9\x85\"", "anger", "negative", 0, 1, b"Rachel"),
    ])
    rows = read_meld_csv(path)
    assert [r["Utterance"] for r in rows] == ["Oh, I don’t think so.", "She said \"no\", café…"]
    assert list(rows[0]) == list(MELD_COLUMNS)
    assert rows[1]["EndTime"] == "0:01:02,25"


def test_read_csv_names_missing_columns(tmp_path: Path) -> None:
    header = HEADER.replace(b",Sentiment", b"").replace(b",Season", b",Seasons")
    path = _write_csv(tmp_path / "bad.csv", [], header)
    with pytest.raises(MeldError, match=r"bad\.csv: missing column\(s\) 'Sentiment', 'Season'"):
        read_meld_csv(path)


def test_read_csv_refuses_unreadable_and_ragged(tmp_path: Path) -> None:
    with pytest.raises(MeldError, match="nope.csv: cannot read MELD CSV"):
        read_meld_csv(tmp_path / "nope.csv")
    path = _write_csv(tmp_path / "ragged.csv", [b"1,Hi,Joey,joy"])
    with pytest.raises(MeldError, match="ragged.csv: line 2 has 4 fields, the header has 11"):
        read_meld_csv(path)


@pytest.fixture
def meld_root(tmp_path: Path) -> Path:
    """A MELD root: 5 train rows (one bad emotion, one repeat); clips for some of them."""
    _write_csv(tmp_path / "train_sent_emo.csv", [
        _row(1, b"Hi.", "neutral", "neutral", 0, 0),
        _row(2, b"Great\x92s news!", "joy", "positive", 0, 1, b"Monica"),
        _row(3, b"What?", "surprised", "neutral", 1, 0),
        _row(4, b"No!", "anger", "negative", 1, 1),
        _row(5, b"No!", "anger", "negative", 1, 1),
    ])
    clips = tmp_path / "train_splits"
    clips.mkdir()
    for name in ("dia0_utt0.mp4", "dia0_utt1.mp4"):
        (clips / name).write_bytes(b"")
    return tmp_path


def test_meld_records_maps_rows_and_skips(meld_root: Path) -> None:
    records, skips = meld_records(MeldConfig(root=str(meld_root)), "train")
    assert [r.clip_id for r in records] == ["train/dia0_utt0", "train/dia0_utt1"]
    joy = records[1]
    assert joy.path == meld_root / "train_splits" / "dia0_utt1.mp4"
    assert (joy.label, joy.speaker, joy.group) == (3, "Monica", "train/dia0")
    assert joy.extra["sentiment"] == 2 and joy.extra["text"] == "Great’s news!"
    assert (joy.extra["dialogue_id"], joy.extra["utterance_id"]) == (0, 1)
    assert (joy.extra["season"], joy.extra["episode"]) == (3, 7)
    assert joy.extra["start"] == pytest.approx(61.5) and joy.extra["end"] == pytest.approx(62.25)
    reasons = [(s.item, s.reason) for s in skips]
    assert "Sr No. 3" in reasons[0][0] and "Emotion 'surprised' is not one of" in reasons[0][1]
    assert reasons[1] == ("train/dia1_utt1", f"{meld_root / 'train_splits' / 'dia1_utt1.mp4'}: "
                                             "clip file missing")
    assert reasons[2][0] == "train/dia1_utt1" and "repeats" in reasons[2][1]


def test_meld_records_text_only(meld_root: Path) -> None:
    records, skips = meld_records(MeldConfig(root=str(meld_root), train_clips="gone"), "train",
                                  require_clips=False)
    assert [r.clip_id for r in records] == ["train/dia0_utt0", "train/dia0_utt1", "train/dia1_utt1"]
    assert all(r.path is None for r in records)
    assert len(skips) == 2
    assert class_counts(records, len(MELD_EMOTIONS)) == [1, 0, 0, 1, 1, 0, 0]


def test_meld_records_refuses_missing_folder_split_and_csv(meld_root: Path) -> None:
    with pytest.raises(MeldError, match="gone: MELD train clip folder not found"):
        meld_records(MeldConfig(root=str(meld_root), train_clips="gone"), "train")
    with pytest.raises(MeldError, match="split 'val' is unknown"):
        meld_records(MeldConfig(root=str(meld_root)), "val")
    with pytest.raises(MeldError, match="dev_sent_emo.csv: cannot read"):
        meld_records(MeldConfig(root=str(meld_root)), "dev")


def test_class_counts_refuses_out_of_range(meld_root: Path) -> None:
    records, _ = meld_records(MeldConfig(root=str(meld_root)), "train", require_clips=False)
    with pytest.raises(ValueError, match="dia0_utt0: label 4 outside 0..2"):
        class_counts(records, 3)


def _real_csv(shared_data: Path, name: str) -> Path:
    path = shared_data / "meld" / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.shared
@pytest.mark.parametrize("name, n_rows", [("train_sent_emo.csv", 9989), ("dev_sent_emo.csv", 1109)])
def test_real_csvs_read_cleanly(shared_data: Path, name: str, n_rows: int) -> None:
    path = _real_csv(shared_data, name)
    rows = read_meld_csv(path)
    assert len(rows) == n_rows
    data = path.read_bytes()
    try:  # where a copy is valid UTF-8 throughout, the repair must change nothing
        assert decode_mixed(data) == data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = " ".join(r["Utterance"] for r in rows)
    assert "’" in text
    assert not any(bad in text for bad in ("â€", "Ã", "\ufffd", "\x92", "\x85"))


@pytest.mark.shared
def test_real_train_records_and_counts(shared_data: Path) -> None:
    path = _real_csv(shared_data, "train_sent_emo.csv")
    cfg = MeldConfig(root=str(path.parent))
    records, skips = meld_records(cfg, "train", require_clips=False)
    assert len(records) == 9989 and len(skips) == 0
    counts = dict(zip(MELD_EMOTIONS, class_counts(records, len(MELD_EMOTIONS)), strict=True))
    assert counts == {"neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109,
                      "sadness": 683, "disgust": 271, "fear": 268}
    assert Counter(r.extra["sentiment"] for r in records) == {1: 4710, 0: 2945, 2: 2334}
    first = records[0]
    assert first.clip_id == "train/dia0_utt0" and first.speaker == "Chandler"
    assert first.extra["start"] == pytest.approx(976.059)
    assert first.extra["text"].startswith("also I was the point person on my company’s transition")


ODD = os.fsdecode(b"data-\xff")  # a folder name that is not UTF-8


_MELD_HEADER = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
                "StartTime,EndTime")


def _meld_row(sr: int, speaker: str) -> str:
    return f'{sr},Hi!,{speaker},joy,positive,0,{sr},1,1,"00:00:01,000","00:00:02,000"'


def test_utf16_meld_csv_is_read_and_nul_bytes_without_a_mark_are_one_line(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    text = "\n".join([_MELD_HEADER, _meld_row(1, "Joey"), _meld_row(2, "Rachel")]) + "\n"
    (folder / "utf8.csv").write_text(text, encoding="utf-8")
    (folder / "utf16.csv").write_text(text, encoding="utf-16")        # with a byte-order mark
    assert read_meld_csv(folder / "utf16.csv") == read_meld_csv(folder / "utf8.csv")
    (folder / "bare16.csv").write_bytes(text.encode("utf-16-le"))     # no mark
    with pytest.raises(MeldError) as err:
        read_meld_csv(folder / "bare16.csv")
    assert "bare16.csv" in str(err.value) and "save it as UTF-8" in str(err.value)
    assert "\x00" not in str(err.value) and "\n" not in str(err.value)


def test_meld_speaker_with_a_nul_byte_is_the_same_speaker(tmp_path, caplog):
    folder = tmp_path / ODD
    folder.mkdir()
    rows = [_MELD_HEADER, _meld_row(1, "Joey"), _meld_row(2, "Joey\x00"), _meld_row(3, "Jo\tey ")]
    (folder / "train_sent_emo.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="mmer")
    records, _ = meld_records(MeldConfig(root=str(folder)), "train", require_clips=False)
    assert [r.speaker for r in records] == ["Joey"] * 3
    assert "control characters" in caplog.text
