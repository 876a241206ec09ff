"""The encoded corpus format: windows and splits, the vocabulary, loading `data/encoded/`."""
