"""Dialogue context windows and context strings (causal and offline)."""
from __future__ import annotations

import pytest

from mmer.errors import BadInput
from mmer.features.context import TARGET_MARK, context_strings, context_windows


def _entry(dialogue: str, utt: int, speaker: str, text: str) -> dict:
    return {"clip_id": f"{dialogue}_utt{utt}", "group": dialogue, "speaker": speaker,
            "extra": {"utterance_id": utt, "text": text}}


def _dialogues() -> list[dict]:
    # Sorted by clip id, as records are: utt10 comes before utt2 in string order.
    rows = [_entry("train/dia0", u, "Joey" if u % 2 else "Ross", f"a{u}") for u in range(12)]
    rows += [_entry("train/dia1", u, "Monica", f"b{u}") for u in (0, 1, 3)]  # utt 2 skipped
    return sorted(rows, key=lambda e: e["clip_id"])


def test_windows_hold_the_past_of_the_same_dialogue_only() -> None:
    entries = _dialogues()
    where = {e["clip_id"]: i for i, e in enumerate(entries)}
    windows = context_windows(entries, 3)
    ids = {e["clip_id"]: [entries[j]["clip_id"] for j in w] for e, w in zip(entries, windows, strict=True)}
    assert ids["train/dia0_utt0"] == ["train/dia0_utt0"]
    assert ids["train/dia0_utt2"] == ["train/dia0_utt0", "train/dia0_utt1", "train/dia0_utt2"]
    assert ids["train/dia0_utt10"] == [f"train/dia0_utt{u}" for u in (7, 8, 9, 10)]
    # dia1 never sees dia0, and a skipped utterance is bridged by the nearest earlier ones.
    assert ids["train/dia1_utt0"] == ["train/dia1_utt0"]
    assert ids["train/dia1_utt3"] == ["train/dia1_utt0", "train/dia1_utt1", "train/dia1_utt3"]
    for e, w in zip(entries, windows, strict=True):
        assert w[-1] == where[e["clip_id"]] and len(w) <= 4
        assert all(entries[j]["group"] == e["group"] for j in w)
        assert all(entries[j]["extra"]["utterance_id"] < e["extra"]["utterance_id"] for j in w[:-1])
    assert context_windows(entries, 0) == [[i] for i in range(len(entries))]
    with pytest.raises(ValueError, match="0 or more"):
        context_windows(entries, -1)
    with pytest.raises(BadInput, match="utterance_id"):
        context_windows([{"group": "x", "extra": {}}], 2)


def test_context_string_marks_the_target_first_then_past_most_recent_first() -> None:
    entries = _dialogues()
    strings = dict(zip((e["clip_id"] for e in entries), context_strings(entries, 2), strict=True))
    assert strings["train/dia0_utt3"] == f"{TARGET_MARK} Joey: a3 [SEP] Ross: a2 [SEP] Joey: a1"
    assert strings["train/dia0_utt0"] == f"{TARGET_MARK} Ross: a0"
    assert strings["train/dia1_utt1"] == f"{TARGET_MARK} Monica: b1 [SEP] Monica: b0"
    # No context: the utterance's own text, unchanged (the frozen cache keys stay the same).
    assert context_strings(entries, 0) == [e["extra"]["text"] for e in entries]
    named = context_strings(entries, 0, speaker_names=True)
    assert named[0] == "Ross: a0" and named == [f"{e['speaker']}: {e['extra']['text']}" for e in entries]


def test_offline_windows_add_the_later_utterances_of_the_same_dialogue_only() -> None:
    entries = _dialogues()
    windows = context_windows(entries, 2, "dialogue")
    ids = {e["clip_id"]: [entries[j]["clip_id"] for j in w] for e, w in zip(entries, windows, strict=True)}
    assert ids["train/dia0_utt5"] == [f"train/dia0_utt{u}" for u in (3, 4, 5, 6, 7)]
    assert ids["train/dia0_utt11"] == [f"train/dia0_utt{u}" for u in (9, 10, 11)]  # dialogue's end
    assert ids["train/dia1_utt0"] == ["train/dia1_utt0", "train/dia1_utt1", "train/dia1_utt3"]
    for e, w in zip(entries, windows, strict=True):
        assert all(entries[j]["group"] == e["group"] for j in w)
    assert context_windows(entries, 2, "past") == context_windows(entries, 2)
    with pytest.raises(ValueError, match="context_mode"):
        context_windows(entries, 2, "future")
