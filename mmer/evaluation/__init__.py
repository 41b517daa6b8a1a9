"""mmer.evaluation."""
