"""Package marker: media decoding (PyAV) and media writing."""
