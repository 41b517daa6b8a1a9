"""``python -m mmer.synthetic`` (see :mod:`mmer.cli.synth`)."""
from mmer.cli.synth import main

if __name__ == "__main__":
    raise SystemExit(main())
