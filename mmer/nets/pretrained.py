"""Strict loading of backbone checkpoints from ``resnet/``. Nothing is ever downloaded.

:func:`load_backbone_weights` converts a checkpoint of a known *layout* to the
module's parameter names, then checks keys and shapes strictly: any missing,
unexpected or shape-mismatched key stops with an error that lists them. Only two
documented exceptions are tolerated, and both are recorded in the returned metadata:

- ``IGNORABLE_PREFIXES``: classifier keys (``fc.*``, ``classifier.*``) of a checkpoint
  whose target module has no classifier at all (a feature extractor such as
  :class:`~mmer.nets.audio_resnet.AudioResNet18`). They are listed under ``ignored``.
- ``*.num_batches_tracked`` BatchNorm counters absent from the checkpoint: files
  written before PyTorch 0.4 (the 2017/2018 Hara releases) do not have them, and they
  play no part in inference. Counted under ``absent_buffers``.

Layouts:

- ``hara``: 3D-ResNets-PyTorch files, ``{"state_dict": {"module.conv1.weight": ...}, ...}``;
  the ``module.`` (DataParallel) prefix is removed.
- ``torchvision``: a plain torchvision state dict (``r3d_18-b3b3357e.pth``).
- ``torchvision_1ch``: as ``torchvision``, with ``conv1.weight`` (O, 3, k, k) summed over
  its RGB axis to (O, 1, k, k) for 1-channel spectrogram input (``resnet18-f37072fd.pth``).

Policies (``backbone.pretrained``): ``required`` - a missing file is an error saying
which file to put where; ``optional`` - a missing file logs a warning and the module
keeps its random initialisation; ``none`` - random initialisation on purpose, the file
is not read. The returned metadata always says which happened.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmer.config import BackboneConfig
from mmer.errors import BadInput, brief
from mmer.nets.frame_encoders import ENCODERS
from mmer.nets.ported import clip_keys, random_reason

log = logging.getLogger(__name__)

LAYOUTS = ("hara", "torchvision", "torchvision_1ch")
IGNORABLE_PREFIXES = ("fc.", "classifier.")
OPTIONAL_BUFFER_SUFFIX = ".num_batches_tracked"
_LIST_AT_MOST = 20
# The file each backbone's checkpoint has under its usual name (see resnet/README.md).
STANDARD_FILES = {"r3d_101": "resnet-101-kinetics.pth", "r3d_18": "r3d_18-b3b3357e.pth",
                  "resnet18": "resnet18-f37072fd.pth",
                  **{name: spec.file for name, spec in ENCODERS.items()}}  # 2D frame encoders
# The pretrained audio encoders with fixed files (python -m mmer.weights list): the file whose
# presence decides loaded or random (Whisper: the CTranslate2 folder's model.bin).
AUDIO_ENCODER_FILES = {"whisper_tiny": "whisper-tiny.en-ct2/model.bin",
                       "whisper_base": "whisper-base-ct2/model.bin",
                       "mobilenet_v2": "mobilenet_v2-b0353104.pth",
                       "efficientnet_lite0": "efficientnet-lite0-57934424.pth"}


class WeightLoadError(BadInput):
    """A checkpoint that cannot be loaded as given; the message names the file."""


class MissingWeightsError(WeightLoadError):
    """A required checkpoint file is not on disk."""


def weight_file(bb: BackboneConfig, part: str) -> Path:
    """Checkpoint path of the ``"video"`` or ``"audio"`` backbone of `bb`."""
    if part == "video":
        return Path(bb.weights_dir) / (bb.video_weights or STANDARD_FILES[bb.video])
    if part == "audio":
        return Path(bb.weights_dir) / AUDIO_ENCODER_FILES.get(bb.audio, bb.audio_weights)
    raise BadInput(f"unknown backbone part {part!r}; choices: video, audio")


def load_backbone_weights(module: nn.Module, path: str | Path, *, layout: str,
                          policy: str) -> dict[str, Any]:
    """Load the checkpoint at `path` into `module` strictly, following `policy`.

    Returns metadata: ``file``, ``layout``, ``policy``, ``status`` ("loaded" or
    "random"), ``reason`` (why random, else None), ``missing``/``unexpected`` (always
    empty when loaded: otherwise this raises), ``ignored`` and ``absent_buffers``.
    Raises :class:`MissingWeightsError` (required, no file) or :class:`WeightLoadError`.
    """
    if layout not in LAYOUTS:
        raise BadInput(f"unknown weight layout {layout!r}; choices: {', '.join(LAYOUTS)}")
    path = Path(path)
    meta: dict[str, Any] = {"file": str(path), "layout": layout, "policy": policy,
                            "status": "random", "reason": None, "missing": [],
                            "unexpected": [], "ignored": [], "absent_buffers": 0}
    meta["reason"] = random_reason(path, policy, missing=MissingWeightsError,
                                   fix="resnet/README.md says where each file comes from")
    if meta["reason"] is not None:
        return meta
    state = convert_checkpoint(_read_checkpoint(path), layout, path)
    meta.update(_load_strict(module, state, path))
    meta["status"] = "loaded"
    log.info("%s: loaded %d tensors into %s", path, len(state), type(module).__name__)
    return meta


def _read_checkpoint(path: Path) -> Any:
    try:
        # weights_only: a checkpoint is data, never code to run.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise WeightLoadError(f"{path}: cannot read checkpoint ({brief(err)})") from err


def convert_checkpoint(obj: Any, layout: str, path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """Turn a loaded checkpoint object of `layout` into a state dict with our key names."""
    if layout == "hara":
        if not isinstance(obj, dict) or "state_dict" not in obj:
            raise WeightLoadError(f"{path}: not a Hara-layout checkpoint (expected a dict "
                                  f"with a 'state_dict' entry)")
        obj = {k.removeprefix("module."): v for k, v in obj["state_dict"].items()}
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightLoadError(f"{path}: expected a state dict (names -> tensors) for layout {layout}")
    state = dict(obj)
    if layout == "torchvision_1ch":
        conv1 = state.get("conv1.weight")
        if conv1 is not None and conv1.ndim == 4 and conv1.shape[1] == 3:
            # Sum over RGB: the response to a grey input (x, x, x) is preserved exactly.
            state["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
    return state


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Check keys and shapes against `module`, raise listing every problem, then copy."""
    expected = module.state_dict()
    has_prefix = {p for p in IGNORABLE_PREFIXES if any(k.startswith(p) for k in expected)}
    ignored = sorted(k for k in state if k not in expected
                     and k.startswith(IGNORABLE_PREFIXES) and not k.startswith(tuple(has_prefix)))
    unexpected = sorted(k for k in state if k not in expected and k not in ignored)
    absent = [k for k in expected if k not in state]
    missing = [k for k in absent if not k.endswith(OPTIONAL_BUFFER_SUFFIX)]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{name} ({len(keys)}): {clip_keys(keys, _LIST_AT_MOST)}" for name, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
                if keys]
    if problems:
        raise WeightLoadError(f"{path}: checkpoint does not match {type(module).__name__}; "
                              + "; ".join(problems))
    module.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    if ignored:
        log.info("%s: ignored %d classifier tensors the feature model does not have: %s",
                 path, len(ignored), clip_keys(ignored, _LIST_AT_MOST))
    return {"ignored": ignored, "absent_buffers": len(absent)}
