"""Dialogue context of MELD utterances: the preceding utterances of the same dialogue.

Pure functions over entries (cache or record entries with ``group`` = the dialogue, e.g.
``"train/dia3"``, and ``extra["utterance_id"]``, ``extra["text"]``, ``speaker``). The
window holds only the ``n`` utterances *before* the target in its own dialogue, so a
prediction can be made online, as the dialogue unfolds; dialogues are never crossed.

Two uses (``text.context`` = n, ``text.dialogue``):

- :func:`context_strings`: one string per utterance, the text input of the frozen
  MiniLM embedding (cached per distinct string like any text) or of the tokenizer::

      "<TARGET> Joey: How you doin'? [SEP] Rachel: Hi. [SEP] Ross: Hey."

  The target comes first, marked, and the past utterances follow most recent first,
  so truncation at ``text.max_tokens`` drops the oldest context, never the target.
- :func:`context_windows`: per utterance, the entry indices of its window, oldest first
  with the target last, for the dialogue layer over per-utterance embeddings; in the
  offline mode (``text.context_mode: dialogue``) the n following utterances come after
  the target too (never another dialogue).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmer.errors import BadInput

CONTEXT_MODES = ("past", "dialogue")
TARGET_MARK = "<TARGET>"
SEPARATOR = " [SEP] "


def spoken(entry: Mapping[str, Any]) -> str:
    """``"Speaker: text"`` of one entry (the text alone when the speaker is unknown)."""
    speaker = str(entry.get("speaker") or "").strip()
    text = str(entry["extra"]["text"]).strip()
    return f"{speaker}: {text}" if speaker else text


def _dialogue_order(entries: Sequence[Mapping[str, Any]]) -> dict[int, tuple[str, int]]:
    try:
        return {i: (str(e["group"]), int(e["extra"]["utterance_id"])) for i, e in enumerate(entries)}
    except (KeyError, TypeError, ValueError) as err:
        raise BadInput(f"dialogue context (text.context) needs each item's dialogue (group) and "
                       f"extra.utterance_id; an item lacks one ({err!r})") from None


def context_windows(entries: Sequence[Mapping[str, Any]], n: int,
                    mode: str = "past") -> list[list[int]]:
    """For each entry, the indices of up to `n` entries of the same dialogue (``group``) with
    a smaller ``utterance_id``, oldest first, followed by the entry itself; with `mode`
    ``"dialogue"`` (offline), then up to `n` later entries of that dialogue, in order.

    Gaps in the utterance ids (skipped rows) are bridged: the window is the n nearest
    earlier utterances present. Raises ValueError for a negative `n`.
    """
    if n < 0:
        raise ValueError(f"text.context must be 0 or more, got {n}")
    if mode not in CONTEXT_MODES:
        raise ValueError(f"text.context_mode must be one of {CONTEXT_MODES}, got {mode!r}")
    ahead = n if mode == "dialogue" else 0
    order = _dialogue_order(entries)
    dialogues: dict[str, list[int]] = {}
    for i in sorted(order, key=lambda i: order[i]):
        dialogues.setdefault(order[i][0], []).append(i)
    windows: list[list[int]] = [[] for _ in entries]
    for members in dialogues.values():
        for pos, i in enumerate(members):
            windows[i] = members[max(0, pos - n):pos + 1 + ahead]
    return windows


def context_strings(entries: Sequence[Mapping[str, Any]], n: int, *,
                    speaker_names: bool = False) -> list[str]:
    """The text input of each entry with `n` utterances of context (module docstring);
    with ``n == 0`` the utterance's own text, unchanged, or ``"Speaker: text"`` with
    `speaker_names` (as the dialogue windows embed each utterance)."""
    if n == 0:
        return [spoken(e) if speaker_names else str(e["extra"]["text"]) for e in entries]
    out = []
    for window in context_windows(entries, n):
        *past, target = window
        parts = [f"{TARGET_MARK} {spoken(entries[target])}"]
        parts += [spoken(entries[j]) for j in reversed(past)]
        out.append(SEPARATOR.join(parts))
    return out
