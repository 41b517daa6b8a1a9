"""mmer.eval."""
