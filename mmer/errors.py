"""The exception types every stage shares, and what each means to a command-line user.

- :class:`BadInput` (a ``ValueError``): a config, a data file, a weight file or a run
  folder that cannot be used as given. Its message is one line naming the file or key
  and the problem; entry points print it and exit 2. Batch jobs catch it per item,
  list the item in a skip list and carry on.
- :class:`ConfigError`: the config itself (a key, a value, an override, the file).
- :class:`TrainingStopped` (a ``RuntimeError``): training ran and stopped on purpose
  (e.g. a non-finite loss); entry points exit 1.

Anything else is a programming error and keeps its traceback.
"""
from __future__ import annotations


class BadInput(ValueError):
    """Input that cannot be used as given; the message names the file or key and the problem."""


class ConfigError(BadInput):
    """A configuration file or override that cannot be used as given."""


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (the message says why and what was kept)."""
