"""``python -m mmer.ablation`` (see :mod:`mmer.cli.ablation`)."""
from mmer.cli.ablation import main

if __name__ == "__main__":
    raise SystemExit(main())
