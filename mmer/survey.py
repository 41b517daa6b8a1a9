"""``python -m mmer.survey`` (see :mod:`mmer.cli.inspect`)."""
from mmer.cli.inspect import main

if __name__ == "__main__":
    raise SystemExit(main())
