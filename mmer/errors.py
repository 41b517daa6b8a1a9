"""The exception types every stage shares, and what each means to a command-line user.

- :class:`BadInput` (a ``ValueError``): a config, a data file, a weight file or a run
  folder that cannot be used as given. Its message is one line naming the file or key
  and the problem; entry points print it and exit 2. Batch jobs catch it per item,
  list the item in a skip list and carry on.
- :class:`ConfigError`: the config itself (a key, a value, an override, the file).
- :class:`TrainingStopped` (a ``RuntimeError``): training ran and stopped on purpose
  (e.g. a non-finite loss); entry points exit 1.

Anything else is a programming error and keeps its traceback.

:func:`is_bad_input` is the one rule a batch job (extraction, anything that loops over
clips) applies to what one item raised: bad input is skipped and listed with its reason;
anything else stops the job with its traceback, naming the item.
"""
from __future__ import annotations

import av
import soundfile


class BadInput(ValueError):
    """Input that cannot be used as given; the message names the file or key and the problem."""


class ConfigError(BadInput):
    """A configuration file or override that cannot be used as given."""


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (the message says why and what was kept)."""


# What decoding a broken file raises when a decoder's own error escapes our wrappers.
DECODER_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, soundfile.SoundFileError)


def is_bad_input(err: BaseException) -> bool:
    """True when `err` says the input is unusable (skip it), False when it is a bug (stop)."""
    return isinstance(err, (BadInput, *DECODER_ERRORS))


def brief(err: BaseException, limit: int = 160) -> str:
    """``"TypeName: first line of the message"``, cut at `limit` characters: the cause of a
    failure inside a one-line message (torch.load, for one, raises pages of advice)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
