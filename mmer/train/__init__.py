"""Package marker: the one training loop, its data, checkpoints, refit and ablation."""
