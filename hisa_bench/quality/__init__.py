"""`hisa-bench quality`: perplexity of a real model whose attention layers read only the keys a
selection (flat top-k, HISA, block-sparse) keeps. forward.py runs the model with a pluggable
attention, selection.py builds the per-query key masks, grid.py the grid of methods, run.py the run."""
