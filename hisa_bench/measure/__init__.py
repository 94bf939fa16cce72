"""Fidelity measurements: HISA and block-sparse selections against the flat indexer."""
