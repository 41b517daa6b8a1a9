"""mmer.extraction."""
