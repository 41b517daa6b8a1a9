"""``python -m mmer.predict`` (see :mod:`mmer.cli.predict`)."""
from mmer.cli.predict import main

if __name__ == "__main__":
    raise SystemExit(main())
