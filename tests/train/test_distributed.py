"""torchrun data-parallel training on the CPU (2 gloo processes, tiny fabricated fold).

The DDP run must give the single-process run's validation metrics (exactly: the same
global batches, the loss over both ranks' clips), write its run folder from rank 0 alone,
record its world size, refuse a resume with another one, and, rerun after kill -9 of a
rank, resume to the weights of an uninterrupted DDP run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mmer.config import ConfigError
from mmer.evaluation.report import write_fold_report
from mmer.run.folder import load_checkpoint, read_metrics
from mmer.train import distributed
from mmer.train.loop import train_fold
from tests.helpers.ddp_train import ddp_cfg, ddp_fold
from tests.helpers.report import _fold_report
from tests.helpers.train import assert_same_run

ROOT = Path(__file__).resolve().parents[2]
VAL = ("val_accuracy", "val_uar", "val_macro_f1", "val_weighted_f1")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # conftest: one thread


def torchrun(out: Path, samplers: str, *extra: str, pause: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *extra, str(ROOT / "tests" / "helpers" / "ddp_train.py"), str(out), samplers, str(pause)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the agent and its workers (their own session)
        raise
    assert proc.returncode == 0, log[-3000:]
    return log


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    finish(torchrun(out, "m_per_class,shuffle,triplet"))
    return out


@pytest.mark.parametrize("sampler", ["m_per_class", "shuffle", "triplet"])
def test_ddp_gives_the_single_process_validation_metrics(ddp_run, tmp_path, sampler):
    cfg = ddp_cfg(tmp_path, sampler)
    single = train_fold(cfg, ddp_fold(cfg), tmp_path / sampler)
    ddp = json.loads((ddp_run / sampler / "result.json").read_text())
    assert single.pop("world_size") == 1 and ddp.pop("world_size") == 2
    assert ddp == single  # best epoch, its validation scores and the test scores of best.pt
    rows_1 = read_metrics(tmp_path / sampler / "metrics.jsonl")
    rows_2 = read_metrics(ddp_run / sampler / "metrics.jsonl")
    assert [[r[k] for k in VAL] for r in rows_1] == [[r[k] for k in VAL] for r in rows_2]
    if sampler != "shuffle":  # even parts (4 + 4 clips or triplets): the logged losses agree too
        for a, b in zip(rows_1, rows_2, strict=True):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    w1 = load_checkpoint(tmp_path / sampler / "last.pt")["model"]
    w2 = load_checkpoint(ddp_run / sampler / "last.pt")["model"]
    for k in w1:  # float sums in another order, amplified by Adam on near-zero gradients
        torch.testing.assert_close(w2[k], w1[k], atol=5e-3, rtol=0)


def test_rank_0_alone_writes_and_the_world_size_is_recorded(ddp_run, tmp_path):
    run = ddp_run / "m_per_class"
    assert len(list(run.glob("events.out.tfevents*"))) == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["world_size"] == 2
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["config"]["train"]["world_size"] == 2 and not any(k.startswith("module.") for k in ckpt["model"])
    cfg = ddp_cfg(tmp_path, "m_per_class")
    with pytest.raises(ConfigError, match="train.world_size: 2 -> 1"):
        train_fold(cfg, ddp_fold(cfg), run)  # a single-process resume of a 2-process run
    cfg.train.world_size = 2
    with pytest.raises(ConfigError, match="2 but 1 process"):
        train_fold(cfg, ddp_fold(cfg), tmp_path / "other")


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of the torchrun worker of `rank` whose command line holds `marker`."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmd and b"ddp_train.py" in cmd and f"RANK={rank}".encode() in env:
            return int(proc.name)
    return None


def test_kill_9_of_one_rank_then_a_rerun_resumes_to_the_same_weights(ddp_run, tmp_path):
    out = tmp_path / "killed"
    proc = torchrun(out, "m_per_class", pause=1.5)
    metrics, deadline = out / "m_per_class" / "metrics.jsonl", time.time() + 180
    while len(read_metrics(metrics)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    pid = _rank_pid(str(out), 1)
    assert pid is not None and len(read_metrics(metrics)) < 4, "the run ended before the kill"
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0  # torchrun stops every rank when one dies (no --max-restarts)
    assert load_checkpoint(out / "m_per_class" / "last.pt")["epoch"] < 4
    log = finish(torchrun(out, "m_per_class"))  # the same command again
    assert "resuming" in log and "after epoch" in log
    assert_same_run(ddp_run / "m_per_class", out / "m_per_class", epochs=4)


def test_parts_of_a_batch_cover_it_once():
    batches = [list(range(10)), list(range(10, 17)), [17]]
    parts = [list(distributed.ShardedBatches(batches, r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [2, 2, 2]  # the last batch (1 clip < 3 ranks) is dropped
    assert parts[0] == [[0, 1, 2, 3], [10, 11, 12]] and parts[2] == [[7, 8, 9], [15, 16]]
    assert sorted(i for p in parts for b in p for i in b) == list(range(17))


def test_a_fold_report_names_its_world_size(tmp_path):
    report = dict(_fold_report(0, seed=3), world_size=2, config={"train": {"batch_size": 32}})
    _, md = write_fold_report(tmp_path, report)
    assert "- trained data-parallel on 2 processes (torchrun), global batch 32" in md.read_text()
    _, md = write_fold_report(tmp_path / "one", dict(report, world_size=1))
    assert "data-parallel" not in md.read_text()
