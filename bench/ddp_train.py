"""Data-parallel training throughput: torchrun with 1 vs N processes, the same global batch.

    python -m bench.ddp_train --compare 1,2 [--batch-size 32] [--steps 20] [--device cpu|cuda]
    torchrun --nproc_per_node N bench/ddp_train.py [...]        # one measurement

The model, inputs and loss of bench/train.py (attention model on cached-feature-shaped
random tensors, mined triplet + cross-entropy, AdamW, bf16 autocast on CUDA) trained as
train.py does under torchrun: DistributedDataParallel, each rank a part of the global
batch, the loss over every rank's embeddings (mmer.train.distributed.GatheredLoss).
``--compare`` launches torchrun once per process count and prints steps/s, global
clips/s and the speed-up over one process. Each rank uses ``--threads`` intra-op threads
(default 1; on a CPU, N processes then use N cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from bench.train import N_CLASSES, SHAPES, optimiser_step, timed
from mmer.config import config_from_dict
from mmer.losses import build_loss
from mmer.models.build import build_model
from mmer.models.forward import autocast
from mmer.train import distributed

NAMES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def measure(args: argparse.Namespace) -> dict:
    """Median step time of DDP training on this rank's part of a global batch."""
    torch.set_num_threads(args.threads)
    ctx = distributed.init_from_env(args.device)
    device = distributed.local_device(torch.device(args.device))
    cfg = config_from_dict({"model": {"fusion": args.fusion}})
    torch.manual_seed(0)
    model = distributed.wrap_model(build_model(cfg, SHAPES, n_classes=N_CLASSES).to(device), device)
    loss_fn = distributed.GatheredLoss(build_loss(cfg.loss, NAMES).to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    local = distributed.part(list(range(args.batch_size)), ctx.rank, ctx.world_size)
    batch = {k: torch.randn(len(local), *s, device=device).half() for k, s in SHAPES.items()}
    labels = torch.tensor(local, device=device) % N_CLASSES

    def step() -> None:
        optimiser_step(model, loss_fn, opt, batch, labels, cfg.train.grad_clip, autocast(device))

    med = statistics.median(timed(step, device, args.steps, args.warmup))
    distributed.shutdown()
    return {"world_size": ctx.world_size, "rank": ctx.rank, "global_batch": args.batch_size,
            "step_s": med, "steps_per_s": 1 / med, "clips_per_s": args.batch_size / med}


def compare(args: argparse.Namespace, counts: list[int]) -> None:
    rows = []
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS=str(args.threads))
    for n in counts:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
               __file__, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device, "--threads", str(args.threads),
               "--fusion", args.fusion]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(next(line for line in out.splitlines() if line.startswith("{"))))
    base = rows[0]["steps_per_s"]
    load = os.getloadavg()[0]
    print(f"device {args.device}, global batch {args.batch_size}, {args.threads} thread(s) per rank, "
          f"fusion {args.fusion}, load avg {load:.1f}, {os.cpu_count()} cores")
    print(f"{'processes':>9}{'ms/step':>10}{'steps/s':>9}{'clips/s':>9}{'speed-up':>9}")
    for r in rows:
        print(f"{r['world_size']:>9}{r['step_s'] * 1000:>10.1f}{r['steps_per_s']:>9.2f}"
              f"{r['clips_per_s']:>9.1f}{r['steps_per_s'] / base:>9.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--compare", default=None, help="process counts to launch, e.g. 1,2,4,8")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (split across ranks)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--fusion", default="cross_attention")
    args = p.parse_args(argv)
    if args.compare:
        compare(args, [int(n) for n in args.compare.split(",")])
        return 0
    result = measure(args)
    if result["rank"] == 0:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
