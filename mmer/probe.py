"""``python -m mmer.probe`` (see :mod:`mmer.cli.probe`)."""
from mmer.cli.probe import main

if __name__ == "__main__":
    raise SystemExit(main())
