"""Where indexer tensors come from: dump files (captured or synthetic) and the synthetic generator."""
