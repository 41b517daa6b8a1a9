"""What every command-line entry point shares: config arguments, logging, exit codes.

Each entry point (``train.py``, ``evaluate.py``, ``python -m mmer.extract``, ...) builds an
``argparse`` parser (``--config``/``--set`` from :func:`add_config_args`) and hands its
body to :func:`run_command`, which sets up logging and turns outcomes into exit codes:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     done
1     stopped on purpose (:class:`mmer.errors.TrainingStopped`, e.g. a non-finite loss)
2     bad config or data (:class:`mmer.errors.BadInput`): one line naming the file or key
130   interrupted (Ctrl-C): one line saying what was kept and how to resume
====  ==========================================================================

Any other exception is a bug: its traceback is shown, never disguised as bad input.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from mmer.config import Config, load_config
from mmer.config.loading import ignored_settings
from mmer.datasets import get_adapter
from mmer.errors import BadInput, ConfigError, TrainingStopped

log = logging.getLogger("mmer")

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def setup_logging(level: int = logging.INFO) -> None:
    """Timestamped log lines on stderr; a no-op when logging is already configured (tests)."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def add_config_args(parser: argparse.ArgumentParser, *, required: bool = True,
                    example: str = "train.lr=1e-3") -> None:
    """``--config FILE`` and repeatable ``--set KEY=VALUE`` (stored as ``args.overrides``)."""
    parser.add_argument("--config", required=required, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value (YAML), e.g. --set {example}")


def add_fold_args(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--fold K`` or ``--folds all`` (mutually exclusive) and ``--run-name NAME``."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--fold", type=int, default=None, help=f"fold to {verb} (default: split.fold)")
    which.add_argument("--folds", choices=("all",), default=None, help=f"{verb} every fold")
    parser.add_argument("--run-name", default=None, help="run folder name (default: the config's name)")


def chosen_folds(cfg: Config, args: argparse.Namespace) -> list[int]:
    """The folds of ``--fold``/``--folds`` (default ``split.fold``); ``--folds all`` is refused
    for a corpus with one fixed split."""
    if args.folds == "all":
        if get_adapter(cfg).fixed_split:
            raise ConfigError(f"{cfg.dataset} has one fixed train/dev/test split: use --fold 0 (the default)")
        return list(range(cfg.split.n_folds))
    return [cfg.split.fold if args.fold is None else args.fold]


def load_args_config(args: argparse.Namespace) -> Config:
    """The config of ``--config``/``--set``, its dataset checked against the registry."""
    cfg = load_config(args.config, args.overrides)
    check_for_corpus(cfg)
    return cfg


def check_for_corpus(cfg: Config) -> None:
    """What the corpus's adapter says of `cfg`: ``model.speaker_norm`` is refused where a
    speaker appears in several parts; a setting this corpus never reads is warned about."""
    adapter = get_adapter(cfg)
    if cfg.model.speaker_norm and adapter.speakers_cross_parts:
        raise ConfigError(f"model.speaker_norm: the speakers of {adapter.name} appear in several "
                          "parts of its split, so their statistics would cross train and test; "
                          "set model.speaker_norm=false")
    for key in ignored_settings(cfg, fixed_split=adapter.fixed_split):
        log.warning("%s is set but not used by this config (%s)", key,
                    "its split is fixed" if key.startswith("split.") else "text.finetune is false")


def _tolerant_output() -> None:
    """Print file names that are not UTF-8 (surrogate-escaped) as escapes, not a traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # not a text stream we may change
            pass


def run_command(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
                argv: Sequence[str] | None = None, *, interrupted: str = "nothing was kept",
                level: int = logging.INFO, plain_errors: bool = False) -> int:
    """Parse `argv`, run ``body(args)`` and map its outcome to an exit code (see above).

    `interrupted`: what a Ctrl-C leaves behind and how to go on, printed as one line.
    `plain_errors`: print a bad input as ``error: ...`` on stderr instead of logging it
    (for commands whose output is an answer, e.g. predict and survey).
    """
    args = parser.parse_args(argv)
    _tolerant_output()
    setup_logging(level)
    try:
        return body(args)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingStopped as err:
        log.error("stopped: %s", err)
        return EXIT_STOPPED
    except BadInput as err:
        if plain_errors:
            print(f"error: {err}", file=sys.stderr)
        else:
            log.error("%s", err)
        return EXIT_BAD_INPUT
