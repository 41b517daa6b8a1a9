"""Evaluate trained folds (see :mod:`mmer.cli.evaluate`): ``python evaluate.py --run runs/NAME``."""
from mmer.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
