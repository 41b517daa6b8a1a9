"""MiniLM helpers: masked mean pooling by hand, a missing package names the scratch encoder."""
from __future__ import annotations

import pytest
import torch

from mmer.config import TextConfig
from mmer.nets.minilm import TextEncoderUnavailable, masked_mean, minilm_dir


def test_masked_mean_by_hand() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(masked_mean(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_missing_minilm_package_suggests_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmer.nets.minilm as text_mod

    def no_package(name: str):
        raise ImportError(name)
    monkeypatch.setattr(text_mod.importlib, "import_module", no_package)
    with pytest.raises(TextEncoderUnavailable, match="not installed.*text.encoder=scratch"):
        minilm_dir(TextConfig())
