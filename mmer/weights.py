"""``python -m mmer.weights`` (see :mod:`mmer.cli.weights`)."""
from mmer.cli.weights import main

if __name__ == "__main__":
    raise SystemExit(main())
