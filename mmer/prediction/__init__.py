"""mmer.prediction."""
