"""Synthetic renderers and set writers in the real media formats of each corpus."""
