"""mmer.data."""
