"""mmer.features."""
