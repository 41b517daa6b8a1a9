"""mmer.runs."""
