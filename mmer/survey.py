"""``python -m mmer.survey`` (see :mod:`mmer.cli.survey`)."""
from mmer.cli.survey import main

if __name__ == "__main__":
    raise SystemExit(main())
