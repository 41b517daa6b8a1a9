"""RAVDESS names and folder scans: every field, every refusal, and the real audio set."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mmer.config import RavdessConfig
from mmer.datasets.ravdess import RAVDESS_EMOTIONS, MalformedName, RavdessRootError, parse_name, scan_ravdess
from mmer.datasets.records import ClipRecord


def test_emotion_order_matches_codes() -> None:
    assert RAVDESS_EMOTIONS == ("neutral", "calm", "happy", "sad", "angry", "fearful",
                                "disgust", "surprised")


def test_parse_every_field() -> None:
    name = parse_name("02-01-06-02-01-02-13.mp4")
    assert (name.modality, name.vocal_channel, name.emotion, name.intensity, name.statement,
            name.repetition, name.actor, name.ext) == (2, 1, 6, 2, 1, 2, 13, ".mp4")
    assert name.emotion_name == "fearful"
    assert name.label == 5
    assert name.gender == "male"
    assert name.modality_name == "video_only"
    assert name.vocal_channel_name == "speech"
    assert name.statement_text == "Kids are talking by the door"
    assert name.trial_id == "01-06-02-01-02-13"
    assert name.stem == "02-01-06-02-01-02-13"


@pytest.mark.parametrize("actor, gender", [(1, "male"), (2, "female"), (23, "male"), (24, "female")])
def test_gender_from_actor_parity(actor: int, gender: str) -> None:
    assert parse_name(f"03-01-03-01-01-01-{actor:02d}.wav").gender == gender


def test_labels_cover_all_codes() -> None:
    names = [parse_name(f"03-01-{code:02d}-01-02-01-08.flac") for code in range(1, 9)]
    assert [n.label for n in names] == list(range(8))
    assert [n.emotion_name for n in names] == list(RAVDESS_EMOTIONS)
    assert names[0].statement_text == "Dogs are sitting by the door"


def test_twins_share_trial_id_only() -> None:
    av, video, audio = (parse_name(n) for n in ("01-01-05-02-02-01-20.mp4",
                                                "02-01-05-02-02-01-20.mp4",
                                                "03-01-05-02-02-01-20.wav"))
    assert av.trial_id == video.trial_id == audio.trial_id == "01-05-02-02-01-20"
    assert len({av.stem, video.stem, audio.stem}) == 3


def test_parse_accepts_paths_and_bare_stems() -> None:
    assert parse_name(Path("/x/Actor_12/01-02-03-01-01-01-12.mp4")).vocal_channel_name == "song"
    assert parse_name("01-01-01-01-01-01-01").ext == ""
    assert parse_name("03-01-01-01-01-01-01.FLAC").ext == ".flac"


@pytest.mark.parametrize("name, reason", [
    ("01-01-01-01-01-01.mp4", "expected 7 dash-separated parts"),
    ("01-01-01-01-01-01-01-01.mp4", "got 8"),
    ("notes.txt", "got 1"),
    ("01-01-0a-01-01-01-01.mp4", "part 3 (emotion) '0a' is not two digits"),
    ("01-01-1-01-01-01-01.mp4", "part 3 (emotion) '1' is not two digits"),
    ("01-01-01-01-01-01-001.mp4", "part 7 (actor) '001' is not two digits"),
    ("04-01-01-01-01-01-01.mp4", "part 1 (modality) 04 is out of range 01..03"),
    ("00-01-01-01-01-01-01.mp4", "part 1 (modality) 00 is out of range"),
    ("01-03-01-01-01-01-01.mp4", "part 2 (vocal_channel) 03 is out of range 01..02"),
    ("01-01-09-01-01-01-01.mp4", "part 3 (emotion) 09 is out of range 01..08"),
    ("01-01-02-03-01-01-01.mp4", "part 4 (intensity) 03 is out of range"),
    ("01-01-02-01-03-01-01.mp4", "part 5 (statement) 03 is out of range"),
    ("01-01-02-01-01-00-01.mp4", "part 6 (repetition) 00 is out of range"),
    ("01-01-02-01-01-01-25.mp4", "part 7 (actor) 25 is out of range 01..24"),
    ("01-01-01-02-01-01-01.mp4", "neutral (emotion 01) has no strong intensity"),
    ("01-02-07-01-01-01-01.mp4", "song (vocal channel 02) has no emotion 07 (disgust)"),
    ("01-01-01-01-01-01-01.wav", "extension '.wav' does not suit modality 01 (full_av)"),
    ("02-01-01-01-01-01-01.flac", "modality 02 (video_only), expected .mp4"),
    ("03-01-01-01-01-01-01.mp4", "expected .wav or .flac"),
])
def test_malformed_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(MalformedName, match="^" + name.replace(".", r"\.")) as info:
        parse_name(name)
    assert reason in str(info.value)
    assert isinstance(info.value, ValueError)


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Empty files: good AV/video-only/audio-only twins, a song, and broken names."""
    _touch(tmp_path,
           "Actor_02/01-01-03-01-01-01-02.mp4", "Actor_02/02-01-03-01-01-01-02.mp4",
           "Actor_02/03-01-03-01-01-01-02.wav", "Actor_01/01-01-05-02-02-01-01.mp4",
           "Actor_01/01-01-01-01-01-01-01.mp4", "Actor_01/01-02-03-01-01-01-01.mp4",
           "Actor_03/01-01-08-02-01-02-03.mp4",
           "Actor_01/01-01-01-02-01-01-01.mp4",    # neutral cannot be strong
           "Actor_01/01-01-04-01-01-01-03.mp4",    # actor 03 inside Actor_01
           "Actor_03/readme.txt", "stray.mp4")
    return tmp_path


def test_scan_keeps_configured_modality_sorted(tree: Path) -> None:
    records, skips = scan_ravdess(RavdessConfig(root=str(tree)))
    assert [r.clip_id for r in records] == ["01-01-01-01-01-01-01", "01-01-03-01-01-01-02",
                                            "01-01-05-02-02-01-01", "01-01-08-02-01-02-03"]
    first = records[2]
    assert first.path == tree / "Actor_01" / "01-01-05-02-02-01-01.mp4"
    assert (first.label, first.speaker, first.group) == (4, "1", "01-05-02-02-01-01")
    assert first.extra["intensity"] == 2 and first.extra["gender"] == "male"
    reasons = {Path(s.item).name: s.reason for s in skips}
    assert set(reasons) == {"01-01-01-02-01-01-01.mp4", "01-01-04-01-01-01-03.mp4",
                            "readme.txt", "stray.mp4"}
    assert "no strong intensity" in reasons["01-01-01-02-01-01-01.mp4"]
    assert "actor 03 in the name disagrees with folder Actor_01" in reasons["01-01-04-01-01-01-03.mp4"]
    assert "not an Actor_XX folder" in reasons["stray.mp4"]


def test_scan_selects_channel_modality_and_actors(tree: Path) -> None:
    song, _ = scan_ravdess(RavdessConfig(root=str(tree), vocal_channel="song"))
    assert [r.clip_id for r in song] == ["01-02-03-01-01-01-01"]
    audio, _ = scan_ravdess(RavdessConfig(root=str(tree), modality="audio_only"))
    assert [r.path.suffix for r in audio] == [".wav"]
    video, skips = scan_ravdess(RavdessConfig(root=str(tree), modality="video_only"))
    assert video[0].group == audio[0].group == "01-03-01-01-01-02"
    only_2_3, skips = scan_ravdess(RavdessConfig(root=str(tree), actors=[2, 3]))
    assert {r.speaker for r in only_2_3} == {"2", "3"}
    assert not any("Actor_01" in s.item for s in skips)


def test_scan_refuses_missing_root_and_empty_selection(tree: Path) -> None:
    with pytest.raises(RavdessRootError, match="nowhere: RAVDESS root folder not found"):
        scan_ravdess(RavdessConfig(root=str(tree / "nowhere")))
    with pytest.raises(RavdessRootError, match="no full_av song clips found"):
        scan_ravdess(RavdessConfig(root=str(tree), vocal_channel="song", actors=[2]))


def test_scan_is_deterministic_and_skips_duplicate_ids(tmp_path: Path) -> None:
    _touch(tmp_path, "Actor_04/03-01-02-01-01-01-04.wav", "Actor_04/03-01-02-01-01-01-04.flac")
    cfg = RavdessConfig(root=str(tmp_path), modality="audio_only")
    first, skips = scan_ravdess(cfg)
    again, _ = scan_ravdess(cfg)
    assert first == again
    assert [r.path.suffix for r in first] == [".flac"]
    assert [Path(s.item).suffix for s in skips] == [".wav"]
    assert "duplicate clip id" in skips.items[0].reason


def _scan_shared(shared_data: Path, name: str) -> tuple[Path, list[ClipRecord]]:
    """Scan an audio-only folder of the shared data (skip when absent); nothing may be skipped."""
    root = shared_data / name
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    records, skips = scan_ravdess(RavdessConfig(root=str(root), modality="audio_only"))
    assert len(skips) == 0, list(skips)
    return root, records


@pytest.mark.shared
def test_real_audio_only_set(shared_data: Path) -> None:
    _, records = _scan_shared(shared_data, "ravdess-speech-audio")
    assert len(records) == 960
    per_actor = Counter(int(r.speaker) for r in records)
    assert sorted(per_actor) == list(range(1, 17))
    assert set(per_actor.values()) == {60}
    assert Counter(r.label for r in records)[0] == 16 * 4  # neutral: no strong intensity
    assert all(r.path.suffix == ".flac" and r.path.is_file() for r in records)


@pytest.mark.shared
def test_real_48k_wav_samples(shared_data: Path) -> None:
    root, records = _scan_shared(shared_data, "ravdess-speech-48k-samples")
    assert len(records) == len(list(root.glob("Actor_*/*.wav"))) > 0
    assert all(r.path.suffix == ".wav" for r in records)
