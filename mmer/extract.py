"""``python -m mmer.extract`` (see :mod:`mmer.cli.extract`)."""
from mmer.cli.extract import main

if __name__ == "__main__":
    raise SystemExit(main())
