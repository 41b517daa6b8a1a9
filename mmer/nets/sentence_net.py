"""BERT-layout (MiniLM) and MPNet-layout sentence transformers in plain PyTorch, loaded strictly.

:class:`SentenceNet` is the transformer of a sentence-transformers folder (``config.json``
+ ``model.safetensors``), split so that the frozen lower blocks can run once and their
output states be cached (:mod:`mmer.features.trunk`) while only the top blocks train:

- ``states(ids, mask, stop)``: (B, T, D) hidden states entering block `stop`;
- ``TopBlocks(net, k)``: copies of the last k blocks (and MPNet's relative position bias)
  that run on those states -> mean-pooled, L2-normalised (B, D) sentence embedding.

The two layouts share the post-norm block; they differ in the embeddings (BERT: word +
absolute position + token type 0; MPNet: word + position ids counted from padding_idx 1 + 1)
and in the attention bias (MPNet adds a relative position bias computed once per length,
shared by every block). Loading is strict: every weight must be in the file, and the file
may hold nothing else but a pooler and position-id buffers.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmer.errors import ConfigError
from mmer.nets.minilm import masked_mean
from mmer.nets.pretrained import WeightLoadError

LAYOUTS = ("bert", "mpnet")
MPNET_PAD = 1  # MPNet's position padding index (fixed, whatever the config's pad_token_id)


@dataclass(frozen=True)
class NetSpec:
    """The shape of a sentence transformer, read from its ``config.json``."""

    layout: str
    vocab_size: int
    hidden: int
    n_layers: int
    n_heads: int
    intermediate: int
    max_positions: int
    eps: float
    pad_id: int
    type_vocab: int = 2
    buckets: int = 32

    @classmethod
    def from_config(cls, path: Path) -> NetSpec:
        """The spec of folder `path` (its ``config.json``; ``model_type`` gives the layout)."""
        try:
            c = json.loads((path / "config.json").read_text())
            layout = c["model_type"]
            if layout not in LAYOUTS:
                raise WeightLoadError(f"{path}/config.json: model_type {layout!r}; valid: "
                                      f"{', '.join(LAYOUTS)}")
            return cls(layout, c["vocab_size"], c["hidden_size"], c["num_hidden_layers"],
                       c["num_attention_heads"], c["intermediate_size"],
                       c["max_position_embeddings"], c.get("layer_norm_eps", 1e-12),
                       c.get("pad_token_id", 0), c.get("type_vocab_size", 2),
                       c.get("relative_attention_num_buckets", 32))
        except (OSError, KeyError, ValueError) as err:
            raise WeightLoadError(f"{path}/config.json: unreadable transformer config ({err})") from None


class Embeddings(nn.Module):
    """(B, T) ids + mask -> (B, T, D) normalised token embeddings of the spec's layout."""

    def __init__(self, s: NetSpec) -> None:
        super().__init__()
        self.layout, self.pad_id = s.layout, s.pad_id
        self.word_embeddings = nn.Embedding(s.vocab_size, s.hidden, padding_idx=s.pad_id)
        self.position_embeddings = nn.Embedding(s.max_positions, s.hidden)
        if s.layout == "bert":
            self.token_type_embeddings = nn.Embedding(s.type_vocab, s.hidden)
        self.LayerNorm = nn.LayerNorm(s.hidden, eps=s.eps)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.word_embeddings(ids)
        if self.layout == "mpnet":  # positions count from 2 past id 1, MPNet's fixed padding_idx
            real = ids.ne(MPNET_PAD).long()
            x = x + self.position_embeddings(torch.cumsum(real, 1) * real + MPNET_PAD)
        else:
            x = x + self.position_embeddings(torch.arange(ids.shape[1], device=ids.device))
            x = x + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class Block(nn.Module):
    """Post-norm transformer block: (B, T, D) + additive (B, H, T, T) bias -> (B, T, D)."""

    def __init__(self, s: NetSpec) -> None:
        super().__init__()
        self.n_heads = s.n_heads
        self.q, self.k, self.v, self.o = (nn.Linear(s.hidden, s.hidden) for _ in range(4))
        self.attn_norm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.up = nn.Linear(s.hidden, s.intermediate)
        self.down = nn.Linear(s.intermediate, s.hidden)
        self.out_norm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, t, d = x.shape
        heads = [f(x).view(b, t, self.n_heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v)]
        scores = heads[0] @ heads[1].transpose(-1, -2) / math.sqrt(d // self.n_heads) + bias
        ctx = self.dropout(scores.softmax(-1)) @ heads[2]
        x = self.attn_norm(x + self.dropout(self.o(ctx.transpose(1, 2).reshape(b, t, d))))
        return self.out_norm(x + self.dropout(self.down(F.gelu(self.up(x)))))


def relative_buckets(length: int, buckets: int = 32, max_distance: int = 128) -> Tensor:
    """(T, T) MPNet relative-position bucket of key j seen from query i (T5's scheme)."""
    pos = torch.arange(length)
    n = pos[:, None] - pos[None, :]  # -(key - query)
    half = buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    large = exact + (torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                     * (half - exact)).long()
    return ret + torch.where(n < exact, n, large.clamp(max=half - 1))


def attention_bias(mask: Tensor, rel: nn.Embedding | None, buckets: int) -> Tensor:
    """(B, H | 1, T, T) additive bias: -inf-like on padded keys, + MPNet's relative bias."""
    bias = (~mask.bool())[:, None, None, :].float() * torch.finfo(torch.float32).min
    if rel is not None:
        t = mask.shape[1]
        bias = bias + rel(relative_buckets(t, buckets).to(mask.device)).permute(2, 0, 1)[None]
    return bias


class SentenceNet(nn.Module):
    """The whole transformer: (B, T) ids + mask -> (B, T, D) last hidden states."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = Embeddings(spec)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layers))
        self.rel = nn.Embedding(spec.buckets, spec.n_heads) if spec.layout == "mpnet" else None

    def states(self, ids: Tensor, mask: Tensor, stop: int | None = None) -> Tensor:
        """(B, T, D) states entering block `stop` (default: the output of the last block)."""
        x = self.embeddings(ids, mask)
        bias = attention_bias(mask, self.rel, self.spec.buckets)
        for block in self.blocks[:stop]:
            x = block(x, bias)
        return x

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        return self.states(ids, mask)


class TopBlocks(nn.Module):
    """The last `k` blocks of `net` (copies: training them leaves `net` as loaded), with
    MPNet's relative bias, + mean pooling + L2 norm: (B, T, D) states entering block L - k
    and (B, T) mask -> (B, D)."""

    def __init__(self, net: SentenceNet, k: int) -> None:
        super().__init__()
        n = net.spec.n_layers
        if not 1 <= k <= n:
            raise ConfigError(f"finetune.top_blocks {k}: the encoder has {n} blocks (1..{n})")
        self.spec, self.start = net.spec, n - k
        self.blocks = copy.deepcopy(net.blocks[self.start:])
        self.rel = copy.deepcopy(net.rel)
        self.out_dim = net.spec.hidden

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        x = states.float()
        bias = attention_bias(mask, self.rel, self.spec.buckets)
        for block in self.blocks:
            x = block(x, bias)
        return F.normalize(masked_mean(x, mask), dim=-1)


# Our block's parameter names -> the file's, per layout (inside ``encoder.layer.<i>.``).
_BLOCK_NAMES = {
    "bert": {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
             "up": "intermediate.dense", "down": "output.dense", "out_norm": "output.LayerNorm"},
    "mpnet": {"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v",
              "o": "attention.attn.o", "attn_norm": "attention.LayerNorm",
              "up": "intermediate.dense", "down": "output.dense", "out_norm": "output.LayerNorm"},
}
_IGNORED = ("pooler.", "embeddings.position_ids")


def file_name(name: str, layout: str) -> str:
    """The safetensors key of our parameter `name` (e.g. ``blocks.3.q.weight``)."""
    if name.startswith("rel."):
        return "encoder.relative_attention_bias." + name[4:]
    if name.startswith("blocks."):
        _, index, part, leaf = name.split(".")
        return f"encoder.layer.{index}.{_BLOCK_NAMES[layout][part]}.{leaf}"
    return name


def load_sentence_net(path: Path) -> SentenceNet:
    """The transformer of sentence-transformers folder `path` (either layout), strictly:
    raises :class:`WeightLoadError` naming missing, unexpected or misshapen weights."""
    from safetensors.torch import load_file  # optional dependency (text weights)
    spec = NetSpec.from_config(path)
    net = SentenceNet(spec)
    try:
        stored = load_file(str(path / "model.safetensors"))
    except (OSError, RuntimeError) as err:
        raise WeightLoadError(f"{path}/model.safetensors: unreadable ({err})") from None
    prefix = f"{spec.layout}."  # some exports prefix every key with the model type
    stored = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in stored.items()}
    wanted = {name: file_name(name, spec.layout) for name in net.state_dict()}
    known = set(wanted.values())
    missing = [f for f in wanted.values() if f not in stored]
    unexpected = [k for k in stored if k not in known and not k.startswith(_IGNORED)]
    if missing or unexpected:
        raise WeightLoadError(f"{path}/model.safetensors: weights do not match the {spec.layout} "
                              f"layout (missing {missing[:4]}, unexpected {unexpected[:4]})")
    try:
        net.load_state_dict({name: stored[f] for name, f in wanted.items()}, strict=True)
    except RuntimeError as err:
        raise WeightLoadError(f"{path}/model.safetensors: {str(err).splitlines()[-1].strip()}") from None
    return net.eval()
