"""Train the emotion model (see :mod:`mmer.cli.train`): ``python train.py --config FILE``."""
from mmer.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
