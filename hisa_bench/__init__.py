"""hisa-bench: how much faster, and how faithful, is the hierarchical (HISA) indexer than the flat
DSA lightning indexer, on your GPU and your tensors."""
__version__ = "0.1.0"
