"""The input builder's token inputs of a context run are the context strings."""
from __future__ import annotations

from pathlib import Path

import torch

from mmer.config import config_from_dict
from mmer.datasets.meld import meld_records
from mmer.features.cache import record_entry
from mmer.features.context import TARGET_MARK, context_strings
from mmer.features.tokenizer import WordTokenizer
from mmer.inputs.builder import finish_entries
from mmer.synth.meld import meld_rows, write_meld_csv


def test_token_inputs_are_the_context_strings(tmp_path: Path) -> None:
    cfg = config_from_dict({"dataset": "meld", "model": {"modalities": ["text"]},
                            "text": {"encoder": "scratch", "context": 2, "max_tokens": 32}})
    write_meld_csv(tmp_path / "train_sent_emo.csv", meld_rows(12, seed=1))
    cfg.meld.root = str(tmp_path)
    records = meld_records(cfg.meld, "train", require_clips=False)[0]
    entries = [record_entry(r) for r in records]
    strings = context_strings(entries, 2)
    assert sum(TARGET_MARK in s and "[SEP]" in s for s in strings) > 3
    tok = WordTokenizer.build(strings, 1)
    out = finish_entries(cfg, entries, records, "train", tokenizer=tok)
    expected = tok.encode(strings, 32)
    for entry, ids, plain in zip(out, expected.ids, tok.encode([r.extra["text"] for r in records], 32).ids,
                                 strict=True):
        assert torch.equal(entry["input_ids"], ids) and not torch.equal(ids, plain)
