"""``python -m mmer.results`` (see :mod:`mmer.cli.results`)."""
from mmer.cli.results import main

if __name__ == "__main__":
    raise SystemExit(main())
