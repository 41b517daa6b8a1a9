"""CREMA-D names and folder scans: every field, every refusal, and a synthetic set that decodes."""
from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from mmer.config import CremaDConfig
from mmer.datasets.crema_d import CremaDRootError, scan_crema_d
from mmer.media.decode import decode_clip, load_audio
from mmer.synth.crema_d import (
    CREMA_D_EMOTIONS,
    EMOTION_CODES,
    LEVELS,
    SENTENCES,
    MalformedName,
    crema_d_names,
    make_crema_d_set,
    parse_name,
)
from mmer.synth.render import STYLES, Look

ACTORS = (1001, 1002, 1003, 1004)
TINY = dict(size=(64, 48), fps=15.0, seconds=1.0)
# Per actor: IEO has 5 emotions x LO/MD/HI + neutral XX = 16 clips, DFA has 6 XX clips.
PER_ACTOR = 16 + 6


@pytest.fixture(scope="module")
def crema_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic CREMA-D: 4 actors x 6 emotions x sentences DFA and IEO, both folders."""
    root = tmp_path_factory.mktemp("crema") / "CREMA-D"
    make_crema_d_set(root, actors=ACTORS, sentences=("DFA", "IEO"), **TINY)
    return root


def test_label_order_and_code_tables() -> None:
    assert CREMA_D_EMOTIONS == ("angry", "disgust", "fearful", "happy", "neutral", "sad")
    assert EMOTION_CODES == ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
    assert tuple(SENTENCES) == ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA",
                                "ITS", "TSI", "WSI")
    assert tuple(LEVELS) == ("LO", "MD", "HI", "XX")


def test_parse_every_field() -> None:
    name = parse_name("1042_IEO_FEA_MD.flv")
    assert (name.actor, name.sentence, name.emotion, name.level, name.ext) == (
        1042, "IEO", "FEA", "MD", ".flv")
    assert (name.label, name.emotion_name, name.level_name) == (2, "fearful", "medium")
    assert name.sentence_text == "It's eleven o'clock"
    assert name.stem == "1042_IEO_FEA_MD"


@pytest.mark.parametrize("name, level", [
    ("1001_IEO_ANG_LO.wav", "LO"), ("1001_IEO_DIS_MD.wav", "MD"), ("1091_IEO_SAD_HI.flv", "HI"),
    ("1001_IEO_NEU_XX.flv", "XX"), ("1091_WSI_HAP_XX.mp4", "XX"),
])
def test_parse_valid_levels(name: str, level: str) -> None:
    assert parse_name(name).level == level


def test_labels_cover_all_codes() -> None:
    names = [parse_name(f"1001_DFA_{code}_XX") for code in EMOTION_CODES]
    assert [n.label for n in names] == list(range(6))
    assert [n.emotion_name for n in names] == list(CREMA_D_EMOTIONS)


def test_parse_accepts_paths_bare_stems_and_folder_extensions() -> None:
    assert parse_name(Path("/x/VideoFlash/1001_TIE_SAD_XX.flv"), media="video").actor == 1001
    assert parse_name("1001_TIE_SAD_XX").ext == ""
    assert parse_name("1001_TIE_SAD_XX.MP4", media="video").ext == ".mp4"
    assert parse_name("1001_TIE_SAD_XX.wav", media="audio").ext == ".wav"


@pytest.mark.parametrize("name, media, reason", [
    ("1001_DFA_ANG.flv", None, "expected 4 underscore-separated parts"),
    ("1001_DFA_ANG_XX_2.flv", None, "got 5"),
    ("notes.txt", None, "got 1"),
    ("1000_DFA_ANG_XX.flv", None, "actor '1000' is not a number in 1001..1091"),
    ("1092_DFA_ANG_XX.flv", None, "actor '1092'"),
    ("10a1_DFA_ANG_XX.flv", None, "actor '10a1'"),
    ("01001_DFA_ANG_XX.flv", None, "actor '01001'"),
    ("1001_XYZ_ANG_XX.flv", None, "unknown sentence 'XYZ', expected one of IEO, TIE"),
    ("1001_dfa_ANG_XX.flv", None, "unknown sentence 'dfa'"),
    ("1001_DFA_ANX_XX.flv", None, "unknown emotion 'ANX', expected one of ANG, DIS"),
    ("1001_DFA_ANG_ZZ.flv", None, "unknown level 'ZZ', expected one of LO, MD, HI, XX"),
    ("1001_DFA_ANG_HI.flv", None, "level HI exists only for sentence IEO; DFA is always XX"),
    ("1001_IEO_NEU_LO.wav", None, "neutral (NEU) has no level LO"),
    ("1001_DFA_ANG_XX.mp3", None, "extension '.mp3' is not a CREMA-D media file"),
    ("1001_DFA_ANG_XX.flv", "audio", "does not suit folder AudioWAV (audio), expected .wav"),
    ("1001_DFA_ANG_XX.wav", "video", "folder VideoFlash (video), expected .flv or .mp4"),
])
def test_malformed_names_say_why(name: str, media: str | None, reason: str) -> None:
    with pytest.raises(MalformedName) as err:
        parse_name(name, media=media)
    assert str(err.value).startswith(f"{name}: ")
    assert reason in str(err.value)


def test_design_matches_the_corpus() -> None:
    names = crema_d_names([1001], EMOTION_CODES, tuple(SENTENCES), tuple(LEVELS))
    assert len(names) == 82  # 91 actors x 82 = 7,462 planned clips (7,442 shipped)
    assert {n.level for n in names if n.sentence != "IEO"} == {"XX"}
    assert [n.stem for n in names] == sorted(n.stem for n in names)
    assert [n.level for n in crema_d_names([1001], ["angry"], ["IEO"], ["HI", "XX"])] == ["HI"]


@pytest.mark.parametrize("media", ["video", "audio"])
def test_scan_synthetic_set(crema_root: Path, media: str) -> None:
    records, skips = scan_crema_d(CremaDConfig(root=str(crema_root), media=media))
    assert len(skips) == 0
    assert len(records) == len(ACTORS) * PER_ACTOR
    assert [r.clip_id for r in records] == sorted(r.clip_id for r in records)
    assert {r.speaker for r in records} == {"1001", "1002", "1003", "1004"}
    folder, ext = ("VideoFlash", ".flv") if media == "video" else ("AudioWAV", ".wav")
    for r in records:
        parsed = parse_name(r.path)
        assert r.path == crema_root / folder / f"{r.clip_id}{ext}"
        assert r.group == r.clip_id == parsed.stem
        assert r.speaker == str(parsed.actor)
        assert r.label == EMOTION_CODES.index(parsed.emotion)
        assert r.extra == {"actor": parsed.actor, "sentence": parsed.sentence,
                           "emotion": parsed.emotion, "level": parsed.level, "ext": ext,
                           "media": media}
    assert sorted({r.label for r in records}) == list(range(6))


def test_video_and_audio_files_of_a_recording_share_a_group(crema_root: Path) -> None:
    video, _ = scan_crema_d(CremaDConfig(root=str(crema_root), media="video"))
    audio, _ = scan_crema_d(CremaDConfig(root=str(crema_root), media="audio"))
    assert [(r.group, r.speaker, r.label) for r in video] == [
        (r.group, r.speaker, r.label) for r in audio]


def test_scan_filters_actors_and_levels(crema_root: Path) -> None:
    records, _ = scan_crema_d(CremaDConfig(root=str(crema_root), actors=[1002], levels=["HI"]))
    assert [r.clip_id for r in records] == [f"1002_IEO_{c}_HI" for c in
                                            ("ANG", "DIS", "FEA", "HAP", "SAD")]


def test_scan_skips_strays_malformed_and_duplicates(crema_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "CREMA-D"
    shutil.copytree(crema_root / "VideoFlash", root / "VideoFlash",
                    ignore=lambda _, names: [n for n in names if not n.startswith("1001_DFA")])
    flash = root / "VideoFlash"
    shutil.copy(flash / "1001_DFA_ANG_XX.flv", flash / "1001_DFA_ANG_XX.mp4")
    (flash / "notes.txt").write_text("x")
    (flash / "1001_DFA_ANG_HI.flv").write_bytes(b"")
    (flash / "1001_DFA_SAD_XX.wav").write_bytes(b"")
    (flash / "thumbs").mkdir()
    records, skips = scan_crema_d(CremaDConfig(root=str(root)))
    assert [r.clip_id for r in records] == [f"1001_DFA_{c}_XX" for c in EMOTION_CODES]
    assert records[0].path.suffix == ".flv"
    reasons = {Path(s.item).name: s.reason for s in skips}
    assert set(reasons) == {"1001_DFA_ANG_XX.mp4", "notes.txt", "1001_DFA_ANG_HI.flv",
                            "1001_DFA_SAD_XX.wav", "thumbs"}
    assert reasons["1001_DFA_ANG_XX.mp4"].startswith("duplicate clip id 1001_DFA_ANG_XX")
    assert "got 1" in reasons["notes.txt"]
    assert "exists only for sentence IEO" in reasons["1001_DFA_ANG_HI.flv"]
    assert "does not suit folder VideoFlash" in reasons["1001_DFA_SAD_XX.wav"]
    assert reasons["thumbs"] == "unexpected folder inside VideoFlash"


def test_flv_holds_h264_and_aac_and_decodes(crema_root: Path) -> None:
    path = crema_root / "VideoFlash" / "1003_IEO_HAP_HI.flv"
    with av.open(str(path)) as container:
        assert container.format.name == "flv"
        assert [(s.type, s.codec_context.name) for s in container.streams] == [
            ("video", "h264"), ("audio", "aac")]
        assert container.streams.audio[0].codec_context.sample_rate == 16000
    clip = decode_clip(path, sample_rate=16000)
    assert clip.frames.shape == (15, 48, 64, 3)
    assert clip.fps == pytest.approx(15.0)
    # FLV keeps no edit list, so the AAC encoder's 1024 priming samples and the padding
    # of its last frame stay in the decoded track: 17 frames of 1024 for 16,000 samples.
    assert 16000 <= clip.audio.shape[0] <= 16000 + 2048
    assert np.abs(clip.audio).max() > 0.1


def test_wav_is_16k_mono_and_pitched_by_emotion(crema_root: Path) -> None:
    pitch = Look.of(1002).pitch
    for code, style in (("ANG", "angry"), ("SAD", "sad"), ("FEA", "fearful")):
        wave = load_audio(crema_root / "AudioWAV" / f"1002_DFA_{code}_XX.wav", 16000)
        assert wave.shape == (16000,)
        peak = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / wave.shape[0]
        assert peak == pytest.approx(STYLES[style].f0 * pitch, rel=0.05)


def test_picture_depends_on_emotion(crema_root: Path) -> None:
    angry, sad = (decode_clip(crema_root / "VideoFlash" / f"1001_DFA_{c}_XX.flv", audio=False)
                  for c in ("ANG", "SAD"))
    # Angry faces are red (hue 0), sad ones blue (hue 225): compare red minus blue.
    def redness(frames: np.ndarray) -> float:
        return float(frames[..., 0].astype(float).mean() - frames[..., 2].astype(float).mean())
    assert redness(angry.frames) > redness(sad.frames) + 10


def test_mp4_container_is_scanned_as_video(tmp_path: Path) -> None:
    paths = make_crema_d_set(tmp_path, actors=[1091], emotions=["neutral"], sentences=["WSI"],
                             audio=False, container="mp4", **TINY)
    assert paths == [tmp_path / "VideoFlash" / "1091_WSI_NEU_XX.mp4"]
    records, _ = scan_crema_d(CremaDConfig(root=str(tmp_path)))
    assert [(r.clip_id, r.label, r.extra["ext"]) for r in records] == [
        ("1091_WSI_NEU_XX", 4, ".mp4")]
    assert decode_clip(paths[0]).frames.shape == (15, 48, 64, 3)


def test_missing_root_and_folder_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(CremaDRootError) as err:
        scan_crema_d(CremaDConfig(root=str(tmp_path / "nowhere")))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'nowhere'}: CREMA-D root folder not found")
    assert "AudioWAV/ and VideoFlash/" in message and "\n" not in message
    (tmp_path / "VideoFlash").mkdir()
    with pytest.raises(CremaDRootError, match="AudioWAV: folder not found; media=audio expects"):
        scan_crema_d(CremaDConfig(root=str(tmp_path), media="audio"))
    with pytest.raises(CremaDRootError, match="no video clips"):
        scan_crema_d(CremaDConfig(root=str(tmp_path)))


def test_config_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown level\(s\) \['XY'\], expected some of LO"):
        scan_crema_d(CremaDConfig(root=str(tmp_path), levels=["XY"]))
    with pytest.raises(ValueError, match=r"\[1000\] outside 1001..1091"):
        scan_crema_d(CremaDConfig(root=str(tmp_path), actors=[1000]))
    with pytest.raises(ValueError, match="unknown media 'both'"):
        scan_crema_d(CremaDConfig(root=str(tmp_path), media="both"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown CREMA-D emotion 'calm'"):
        make_crema_d_set(tmp_path, actors=[1001], emotions=["calm"])
    with pytest.raises(ValueError, match=r"unknown CREMA-D level\(s\) \['ZZ'\]"):
        make_crema_d_set(tmp_path, actors=[1001], levels=["ZZ"])
    with pytest.raises(MalformedName, match="actor '1100'"):
        make_crema_d_set(tmp_path, actors=[1100])
