"""``python -m mmer.faces`` (see :mod:`mmer.cli.faces`)."""
from mmer.cli.faces import main

if __name__ == "__main__":
    raise SystemExit(main())
