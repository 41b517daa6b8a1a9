"""mmer.experiments."""
