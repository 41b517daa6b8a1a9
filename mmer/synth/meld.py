"""Synthetic MELD-style clips and annotation rows: dialogues, speakers, emotion-laden text.

Rows carry the 11 columns of the real ``*_sent_emo.csv`` files, with times in
the same ``HH:MM:SS,mmm`` form (quoted by the csv writer, as in the release).
The utterance text contains words tied to the emotion, so a text model can
learn it; the sentiment follows the emotion (surprise is either positive or
negative, as in MELD).
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmer.config import MeldConfig
from mmer.io import atomic_write_text
from mmer.media.write import write_clip
from mmer.synth.render import Look, render_frames, render_tone

log = logging.getLogger(__name__)

COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
           "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]
EMOTIONS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
SENTIMENT = {"anger": "negative", "disgust": "negative", "fear": "negative", "joy": "positive",
             "neutral": "neutral", "sadness": "negative"}
# The RAVDESS-style emotion whose look and sound a MELD emotion borrows.
TO_STYLE = {"anger": "angry", "disgust": "disgust", "fear": "fearful", "joy": "happy",
            "neutral": "neutral", "sadness": "sad", "surprise": "surprised"}
SPEAKERS = ["Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross"]
PHRASES = {
    "anger": ["I am so angry at you!", "This makes me furious.", "Stop it, I'm really mad!",
              "I'm sick of this!", "You are so annoying!"],
    "disgust": ["That is disgusting.", "Ew, gross!", "This smells revolting.",
                "Yuck, that's nasty.", "I find that repulsive."],
    "fear": ["I'm so scared.", "That's terrifying!", "I'm afraid something bad will happen.",
             "Please, I'm frightened.", "I'm really nervous about this."],
    "joy": ["I'm so happy!", "This is wonderful!", "That's great news!", "I love it!",
            "Awesome, thank you!"],
    "neutral": ["Okay, see you on Tuesday.", "Fine, I'll get the coffee.", "Sure, the usual.",
                "We're at the coffee house.", "I'll check the schedule."],
    "sadness": ["I'm so sad.", "I feel miserable.", "I'm heartbroken.", "I'm so lonely.",
                "I just want to cry."],
    "surprise": ["Wow, really?", "What? No way!", "Oh my god, seriously?", "I can't believe it!",
                 "That's unbelievable!"],
}


def _address(name: str, text: str) -> str:
    """'Ross' + 'That is gross.' -> 'Ross, that is gross.' (but 'Ross, I'm sad.')."""
    first = text.split()[0]
    keep = first == "I" or first.startswith("I'")
    return f"{name}, {text if keep else text[0].lower() + text[1:]}"


def _time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def meld_rows(n: int, *, seed: int = 0, mean_seconds: float = 2.0) -> list[dict[str, str]]:
    """`n` rows in dialogue order; emotions cycle in a shuffled order so each appears.

    Each row's clip lasts EndTime - StartTime seconds (0.6 to 1.4 x `mean_seconds`).
    """
    rng = np.random.default_rng([seed, 2])
    emotions = [EMOTIONS[i] for i in np.resize(rng.permutation(len(EMOTIONS)), n)]
    rows, dialogue, utt, clock = [], 0, 0, 60.0
    turn = int(rng.integers(1, 5))
    for k, emotion in enumerate(emotions):
        if utt == turn:
            dialogue, utt, turn, clock = dialogue + 1, 0, int(rng.integers(1, 5)), clock + 30.0
        who = int(rng.integers(len(SPEAKERS)))
        speaker = SPEAKERS[who]
        other = SPEAKERS[(who + int(rng.integers(1, len(SPEAKERS)))) % len(SPEAKERS)]
        text = PHRASES[emotion][int(rng.integers(len(PHRASES[emotion])))]
        if rng.random() < 0.5:  # address someone now and then, as dialogue does
            text = _address(other, text)
        sentiment = SENTIMENT.get(emotion) or ("positive" if rng.random() < 0.5 else "negative")
        duration = round(mean_seconds * float(rng.uniform(0.6, 1.4)), 3)
        rows.append({"Sr No.": str(k + 1), "Utterance": text,
                     "Speaker": speaker, "Emotion": emotion, "Sentiment": sentiment,
                     "Dialogue_ID": str(dialogue), "Utterance_ID": str(utt),
                     "Season": str(1 + dialogue % 10), "Episode": str(1 + dialogue % 24),
                     "StartTime": _time(clock), "EndTime": _time(clock + duration)})
        clock += duration + 0.2
        utt += 1
    return rows


def row_seconds(row: dict[str, str]) -> float:
    """Duration of a row's clip from its StartTime and EndTime."""
    def parse(stamp: str) -> float:
        hms, ms = stamp.split(",")
        h, m, s = (int(x) for x in hms.split(":"))
        return 3600 * h + 60 * m + s + int(ms) / 1000
    return parse(row["EndTime"]) - parse(row["StartTime"])


def write_meld_csv(path: str | Path, rows: list[dict[str, str]]) -> Path:
    """Write rows with the real header, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return Path(path)

def make_meld_set(out: str | Path, n_train: int, *, n_eval: int | None = None,
                  size: tuple[int, int] = (128, 96), fps: float = 15.0, seconds: float = 2.0,
                  sample_rate: int = 16000, seed: int = 0) -> list[Path]:
    """Write a MELD-style tree under ``out/MELD``; return the CSV and clip paths.

    `n_train` train utterances and `n_eval` (default max(7, n_train // 4)) each in dev
    and test, in the folders and CSV names of :class:`mmer.config.MeldConfig`'s defaults:
    ``train_splits/dia{D}_utt{U}.mp4`` with ``train_sent_emo.csv`` and so on. Clips are
    mono AAC at `sample_rate`; each lasts its row's EndTime - StartTime.
    """
    cfg, root = MeldConfig(), Path(out) / "MELD"
    n_eval = max(7, n_train // 4) if n_eval is None else n_eval
    plan = [("train", n_train, cfg.train_csv, cfg.train_clips),
            ("dev", n_eval, cfg.dev_csv, cfg.dev_clips),
            ("test", n_eval, cfg.test_csv, cfg.test_clips)]
    written = []
    for k, (split, n, csv_name, clips) in enumerate(plan):
        rows = meld_rows(n, seed=seed * 3 + k, mean_seconds=seconds)
        written.append(write_meld_csv(root / csv_name, rows))
        for row in tqdm(rows, desc=f"synthetic MELD {split}", disable=None):
            look = Look.of(100 + SPEAKERS.index(row["Speaker"]), seed)
            clip_seed = int(np.random.default_rng([seed, k, int(row["Sr No."])]).integers(2**31))
            kw = dict(seconds=row_seconds(row), seed=clip_seed)
            emotion = TO_STYLE[row["Emotion"]]
            frames = render_frames(emotion, look, size=size, fps=fps, **kw)
            tone = render_tone(emotion, look, sample_rate=sample_rate, **kw)
            name = f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
            written.append(write_clip(root / clips / name, frames, fps, tone, sample_rate))
    log.info("wrote %d synthetic MELD files under %s", len(written), root)
    return written

