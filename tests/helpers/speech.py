"""The pretrained-audio config, its small overrides and a tiny RAVDESS-named speech corpus."""
from __future__ import annotations

from pathlib import Path

from mmer.media.write import write_audio
from mmer.synth.render import EMOTION_CODES, Look, render_tone

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "resnet"
CONFIG = ROOT / "configs" / "ravdess_audio_pretrained.yaml"
HAVE_WHISPER = (WEIGHTS / "whisper-tiny.en-ct2" / "model.bin").is_file()


def _small(tmp_path: Path) -> list[str]:
    """Overrides of the pretrained-audio config: no weights, 3 segments, a 1 s window, one
    model on the plain protocol (the encoder's path is under test, not the recipe)."""
    return [f"backbone.weights_dir={tmp_path / 'no_weights'}", "backbone.pretrained=optional",
            "audio.n_segments=3", "backbone.whisper_frames=100", "backbone.whisper_layers=[4]",
            "model.speaker_norm=false", "model.ensemble=1"]


EMOTIONS = (1, 5)  # neutral, angry


def _write_speech(root: Path, actors) -> None:
    names = {code: name for name, code in EMOTION_CODES.items()}
    for actor in actors:
        for emotion in EMOTIONS:
            for statement in (1, 2):
                tone = render_tone(names[emotion], Look.of(actor), sample_rate=16000, seconds=0.6,
                                   syllable_hz=3.0 + statement, seed=actor * 10 + statement)
                name = f"03-01-{emotion:02d}-01-{statement:02d}-01-{actor:02d}.flac"
                write_audio(root / f"Actor_{actor:02d}" / name, tone, 16000)
