"""Config checks of the text context, dialogue, fine-tuning and focal-loss settings."""
from __future__ import annotations

import pytest

from mmer.config import ConfigError, config_from_dict


def _cfg(**text) -> dict:
    return {"dataset": "meld", "model": {"modalities": ["text"]}, "text": text}


@pytest.mark.parametrize(("text", "loss", "match"), [
    ({"context": -1}, {}, "text.context"),
    ({"context": 3, "dialogue": "gru", "finetune": True}, {}, "text.dialogue"),
    ({"context": 0, "dialogue": "attention"}, {}, "text.dialogue"),
    ({"context": 3, "dialogue": "lstm"}, {}, "dialogue"),
    ({"context": 3, "context_mode": "dialogue"}, {}, "context_mode"),
    ({"layer_decay": 0.0}, {}, "layer_decay"),
    ({"freeze_epochs": -2}, {}, "freeze_epochs"),
    ({}, {"focal_gamma": -1.0}, "focal_gamma"),
])
def test_config_refuses_bad_context_settings(text: dict, loss: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({**_cfg(**text), "loss": loss})
    ok = config_from_dict(_cfg(context=4, dialogue="gru"))
    assert (ok.text.context, ok.text.dialogue) == (4, "gru")
