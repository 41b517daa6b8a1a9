"""mmer.viz."""
