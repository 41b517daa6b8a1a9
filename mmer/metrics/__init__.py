"""mmer.metrics."""
