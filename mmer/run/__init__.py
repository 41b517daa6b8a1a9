"""mmer.run."""
