"""MELD annotation CSVs (``*_sent_emo.csv``) and their clips as records.

Label orders are fixed here and used everywhere (index = position):

- :data:`MELD_EMOTIONS`: 0 anger, 1 disgust, 2 fear, 3 joy, 4 neutral, 5 sadness, 6 surprise
- :data:`MELD_SENTIMENTS`: 0 negative, 1 neutral, 2 positive

The public CSVs are not cleanly encoded: some copies mix UTF-8 with cp1252
bytes (``0x92`` for an apostrophe) and with UTF-8 text that was once decoded as
cp1252 (``'â€™'`` for ``'’'``). :func:`decode_mixed` repairs both without
touching ordinary text.
"""
from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmer.config import Config, ConfigError, MeldConfig
from mmer.datasets.base import PARTS, DatasetAdapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput
from mmer.io import SkipList
from mmer.synth.meld import make_meld_set

log = logging.getLogger(__name__)

MELD_EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
MELD_SENTIMENTS = ("negative", "neutral", "positive")
MELD_COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
                "Utterance_ID", "Season", "Episode", "StartTime", "EndTime")
MELD_SPLITS = ("train", "dev", "test")
TIME = re.compile(r"(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d+))?")


class MeldError(BadInput):
    """A MELD CSV, row or clip folder that cannot be used; the message names the file."""


def _cp1252_char(byte: int) -> str:
    """The cp1252 character of one byte; its Latin-1 twin for the 5 bytes cp1252 leaves undefined."""
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


# What each byte 0x80..0xFF looks like after a cp1252 decode, and back.
_CP1252 = {byte: _cp1252_char(byte) for byte in range(0x80, 0x100)}
_CP1252_BYTE = {char: byte for byte, char in _CP1252.items()}
# A UTF-8 sequence read as cp1252: a lead character followed by the right number of
# continuation characters (the cp1252 faces of bytes 0x80..0xBF).
_CONT = "[" + re.escape("".join(_CP1252[b] for b in range(0x80, 0xC0))) + "]"
_MOJIBAKE = re.compile(f"[\u00c2-\u00df]{_CONT}|[\u00e0-\u00ef]{_CONT}{{2}}|[\u00f0-\u00f4]{_CONT}{{3}}")
_SURROGATE = re.compile("[\udc80-\udcff]")
_REPAIRABLE = (("\u00a0", "\u024f"), ("\u2000", "\u206f"), ("\u20a0", "\u20cf"), ("\u2100", "\u214f"))


def _unmojibake(match: re.Match) -> str:
    raw = bytes(_CP1252_BYTE[char] for char in match.group())
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:  # looked like mojibake but is not valid UTF-8: keep it
        return match.group()
    # Only characters that English subtitles use (accented letters, typographic
    # punctuation, currency, ™) count as repairs; a C1 control or a CJK character
    # means the match was real text that happened to look like mojibake.
    return fixed if any(lo <= fixed <= hi for lo, hi in _REPAIRABLE) else match.group()


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as cp1252 (``'itâ€™s'`` -> ``'it’s'``), twice at most (double damage)."""
    for _ in range(2):
        fixed = _MOJIBAKE.sub(_unmojibake, text)
        if fixed == text:
            break
        text = fixed
    return text


def decode_mixed(data: bytes) -> str:
    """Text from bytes that mix UTF-8 with stray cp1252 bytes.

    Every valid UTF-8 sequence is kept as is; each byte that is not part of one is
    read as cp1252 (``b"don\\x92t"`` -> ``"don’t"``); then :func:`fix_mojibake`. A
    leading byte-order mark is dropped.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    text = _SURROGATE.sub(lambda m: _CP1252[ord(m.group()) - 0xDC00], text)
    return fix_mojibake(text.removeprefix("\ufeff"))


def read_meld_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a MELD ``*_sent_emo.csv`` as dicts keyed by column name (values as text).

    Raises :class:`MeldError` naming the file when it cannot be read, lacks one of
    :data:`MELD_COLUMNS`, or has a row whose field count differs from the header's.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MeldError(f"{path}: cannot read MELD CSV ({err.strerror})") from None
    reader = csv.reader(io.StringIO(_csv_text(path, data), newline=""))
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in MELD_COLUMNS if name not in header]
    if missing:
        raise MeldError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)} "
                        f"(found: {', '.join(header) or 'no header'})")
    rows = []
    for fields in reader:
        if not any(f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(header):
            raise MeldError(f"{path}: line {reader.line_num} has {len(fields)} fields, "
                            f"the header has {len(header)}")
        rows.append(dict(zip(header, fields, strict=True)))
    return rows


def _csv_text(path: Path, data: bytes) -> str:
    """The text of a MELD CSV: UTF-16 read by its byte-order mark, else UTF-8 with stray
    cp1252 bytes (:func:`decode_mixed`); a header with NUL bytes but no mark is refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise MeldError(f"{path}: UTF-16 that does not decode: save it as UTF-8") from None
    if b"\x00" in data.split(b"\n", 1)[0]:
        raise MeldError(f"{path}: holds NUL bytes (UTF-16 without a byte-order mark?): save it as UTF-8")
    return decode_mixed(data)


def clean_speaker(name: str) -> str:
    """A speaker name without control characters (NUL, tabs, ...) or surrounding spaces."""
    return "".join(c for c in name if c.isprintable() or c == " ").strip()


def parse_time(stamp: str) -> float:
    """Seconds from a MELD time stamp ``H:MM:SS,mmm`` (``"00:16:16,059"`` -> 976.059)."""
    match = TIME.fullmatch(stamp.strip())
    if match is None:
        raise BadInput(f"time {stamp!r} is not H:MM:SS,mmm")
    hours, minutes, seconds, frac = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise BadInput(f"time {stamp!r} has minutes or seconds above 59")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(f"0.{frac or 0}")


def _index(value: str, names: tuple[str, ...], column: str) -> int:
    key = value.strip().lower()
    if key not in names:
        raise BadInput(f"{column} {value!r} is not one of {', '.join(names)}")
    return names.index(key)


def _int(row: dict[str, str], column: str) -> int:
    try:
        return int(row[column].strip())
    except ValueError:
        raise BadInput(f"{column} {row[column]!r} is not an integer") from None


def row_record(row: dict[str, str], split: str, path: Path | None) -> ClipRecord:
    """The :class:`ClipRecord` of one CSV row; raises ``ValueError`` for a bad field."""
    dialogue, utterance = _int(row, "Dialogue_ID"), _int(row, "Utterance_ID")
    start, end = parse_time(row["StartTime"]), parse_time(row["EndTime"])
    extra = {"sentiment": _index(row["Sentiment"], MELD_SENTIMENTS, "Sentiment"),
             "text": row["Utterance"], "dialogue_id": dialogue, "utterance_id": utterance,
             "season": _int(row, "Season"), "episode": _int(row, "Episode"),
             "start": start, "end": end, "sr_no": row["Sr No."].strip()}
    return ClipRecord(clip_id=f"{split}/dia{dialogue}_utt{utterance}", path=path,
                      label=_index(row["Emotion"], MELD_EMOTIONS, "Emotion"),
                      speaker=clean_speaker(row["Speaker"]), group=f"{split}/dia{dialogue}", extra=extra)


def split_files(cfg: MeldConfig, split: str) -> tuple[Path, Path]:
    """(CSV path, clip folder) of `split` ("train", "dev" or "test") under ``cfg.root``."""
    if split not in MELD_SPLITS:
        raise MeldError(f"MELD split {split!r} is unknown; choose from {', '.join(MELD_SPLITS)}")
    root = Path(cfg.root)
    return root / getattr(cfg, f"{split}_csv"), root / getattr(cfg, f"{split}_clips")


def meld_records(cfg: MeldConfig, split: str, *,
                 require_clips: bool = True) -> tuple[list[ClipRecord], SkipList]:
    """Records of one MELD split, in CSV order, and the rows skipped with their reasons.

    Each row maps to ``<root>/<clip folder>/dia{D}_utt{U}.mp4``. With `require_clips`
    a row whose clip file is missing is skipped (a missing clip folder is an
    error); without it every good row becomes a record with ``path=None``
    (text-only use). Rows with a bad field or a repeated (dialogue, utterance) are
    skipped. ``extra`` holds sentiment index, text, ids, season, episode, and
    start/end in seconds.
    """
    csv_path, clip_dir = split_files(cfg, split)
    rows = read_meld_csv(csv_path)
    present = None
    if require_clips:
        if not clip_dir.is_dir():
            raise MeldError(f"{clip_dir}: MELD {split} clip folder not found (check meld.root and "
                            f"meld.{split}_clips; a text-only model reads no clips: model.modalities: [text])")
        present = {p.name for p in clip_dir.iterdir()}
    records, skips, seen = [], SkipList(), set()
    odd = sorted({r["Speaker"] for r in rows if clean_speaker(r["Speaker"]) != r["Speaker"].strip()})
    if odd:
        log.warning("%s: %d speaker name(s) held control characters, removed: %s", csv_path, len(odd),
                    ", ".join(repr(n) for n in odd[:5]))
    for row in rows:
        try:
            record = row_record(row, split, None)
        except ValueError as err:
            skips.add(f"{csv_path} (Sr No. {row['Sr No.'].strip()})", str(err))
            continue
        name = f"{record.clip_id.split('/', 1)[1]}.mp4"
        if record.clip_id in seen:
            skips.add(record.clip_id, f"{csv_path}: repeats dialogue/utterance of an earlier row")
        elif present is not None and name not in present:
            seen.add(record.clip_id)
            skips.add(record.clip_id, f"{clip_dir / name}: clip file missing")
        else:
            seen.add(record.clip_id)
            record.path = clip_dir / name if present is not None else None
            records.append(record)
    log.info("MELD %s: %d records, %d skipped (%s)", split, len(records), len(skips), csv_path)
    return records, skips


def class_counts(records: Iterable[ClipRecord], n: int) -> list[int]:
    """How many records carry each label 0..n-1; raises ``ValueError`` for a label outside."""
    counts = [0] * n
    for record in records:
        if not 0 <= record.label < n:
            raise BadInput(f"{record.clip_id}: label {record.label} outside 0..{n - 1}")
        counts[record.label] += 1
    return counts


class MeldAdapter(DatasetAdapter):
    """MELD: Friends utterances with emotion and sentiment, its own train / dev / test split.

    Dev is the validation part; test is used when its CSV (and, for a model that reads
    media, its clip folder) is present. ``best.pt`` maximises dev emotion weighted F1,
    MELD's benchmark metric.
    """

    name = "meld"
    tasks = {"emotion": MELD_EMOTIONS, "sentiment": MELD_SENTIMENTS}
    selection_metric = "weighted_f1"
    fixed_split = True
    speakers_cross_parts = True
    part_of_split = {"train": "train", "dev": "val", "test": "test"}

    def records(self, cfg: Config, *, require_media: bool = True) -> tuple[list[ClipRecord], SkipList]:
        """Records of train, dev and (when present) test; a split without usable rows fails
        naming its CSV. Without `require_media` the clips are not looked for (text only)."""
        records, skips = [], SkipList()
        for split in MELD_SPLITS:
            csv_path, clip_dir = split_files(cfg.meld, split)
            if split == "test" and not (csv_path.is_file() and (clip_dir.is_dir() or not require_media)):
                log.info("MELD test split not found (%s, %s): train and dev only", csv_path, clip_dir)
                continue
            part, part_skips = meld_records(cfg.meld, split, require_clips=require_media)
            if not part:
                raise MeldError(f"{csv_path}: no usable MELD {split} rows ({len(part_skips)} skipped)")
            records.extend(part)
            skips.extend(part_skips)
        return sorted(records, key=lambda r: r.clip_id), skips

    def survey(self, cfg: Config, *, require_media: bool = True
               ) -> tuple[list[ClipRecord], SkipList, list[str]]:
        """Every split that can be read; the others are noted as not used."""
        records, skips, notes = [], SkipList(), []
        for split in MELD_SPLITS:
            try:
                part, part_skips = meld_records(cfg.meld, split, require_clips=require_media)
            except MeldError as err:
                notes.append(f"{split}: not used ({err})")
                continue
            records += part
            skips.extend(part_skips)
        return records, skips, notes

    def part_label(self, part: str) -> str:
        return "dev" if part == "val" else part

    def split(self, cfg: Config, records: Sequence[ClipRecord],
              fold: int) -> tuple[dict[str, list[ClipRecord]], dict[str, Any]]:
        if fold != 0:
            raise ConfigError("MELD has one fixed train/dev/test split: use --fold 0 (the default)")
        parts: dict[str, list[ClipRecord]] = {p: [] for p in PARTS}
        for r in records:
            parts[self.part_of_split[r.clip_id.split("/", 1)[0]]].append(r)
        clips = {p: [r.clip_id for r in parts[p]] for p in PARTS}
        return parts, {"rule": "MELD train / dev (validation) / test", "clips": clips}

    def write_synthetic(self, out: str | Path, **options: Any) -> list[Path]:
        """A MELD-style tree under `out` (see :func:`mmer.synth.meld.make_meld_set`)."""
        return make_meld_set(out, **options)
