"""Package marker: model inputs (the input builder, torch datasets, speaker normalisation)."""
