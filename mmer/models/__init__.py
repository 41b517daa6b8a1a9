"""mmer.models."""
