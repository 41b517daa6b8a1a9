"""``python -m mmer.meld_text``: an alias of ``python train.py`` (text models train through the
one loop like every model; the run lands in ``<runs_dir>/<NAME>/fold_0/``)."""
from mmer.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
