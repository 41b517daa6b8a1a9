"""``python -m mmer.demo`` (see :mod:`mmer.cli.demo`)."""
from mmer.cli.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
