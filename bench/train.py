"""Training throughput of the attention model on cached-feature-shaped random tensors.

    python -m bench.train [--batch-size 32] [--steps 20] [--warmup 3] [--device cpu|cuda]
                          [--threads N] [--fusion cross_attention] [--amp auto|bf16|fp32]
                          [--set key=value ...]

Default: the default config's model (d_model 256, 4 heads, embedding 128,
cross-attention fusion) on RAVDESS-default inputs, video (6, 2048, 4, 4) and audio
(6, 512), with the training loss (semi-hard-mined triplet + cross-entropy), AdamW and
gradient clipping; ``--amp auto`` is training's choice (bf16 autocast on CUDA, none on
the CPU). Prints the median step time, steps/s and clips/s for a training step and for
an inference forward pass. For 1 vs N processes see bench/ddp_train.py.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from mmer.config import config_from_dict
from mmer.losses import build_loss
from mmer.models.build import build_model
from mmer.models.forward import autocast

SHAPES = {"video": (6, 2048, 4, 4), "audio": (6, 512)}
N_CLASSES = 8


def timed(fn, device: torch.device, steps: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def optimiser_step(model, loss_fn, opt, batch: dict, labels: torch.Tensor, grad_clip: float,
                   amp: contextlib.AbstractContextManager) -> None:
    """One training step as the engine takes it: forward under `amp`, loss, backward,
    gradient clipping, AdamW."""
    with amp:
        out = model(batch)
    loss = loss_fn(out, {"label": labels})["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--fusion", default="cross_attention")
    p.add_argument("--amp", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on CUDA as in training, none on the CPU")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_dict({"model": {"fusion": args.fusion}}, args.overrides)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(cfg, SHAPES, n_classes=N_CLASSES).to(device)
    loss_fn = build_loss(cfg.loss, ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust",
                                    "surprised"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    b = args.batch_size
    batch = {k: torch.randn(b, *s, device=device).half() for k, s in SHAPES.items()}  # cache is fp16
    labels = torch.arange(b, device=device) % N_CLASSES

    def amp():
        if args.amp == "auto":
            return autocast(device)
        if args.amp == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step() -> None:
        model.train()
        optimiser_step(model, loss_fn, opt, batch, labels, cfg.train.grad_clip, amp())

    @torch.no_grad()
    def infer() -> None:
        model.eval()
        with amp():
            model(batch)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"device {device}, threads {torch.get_num_threads()}, fusion {args.fusion}, "
          f"batch {b}, amp {args.amp}, {n_params / 1e6:.2f} M parameters, inputs {SHAPES}")
    for name, fn in (("train step", train_step), ("inference", infer)):
        med = statistics.median(timed(fn, device, args.steps, args.warmup))
        print(f"{name:>10}: median {med * 1000:8.1f} ms/batch  {1 / med:7.2f} steps/s  {b / med:8.1f} clips/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
