"""Triton kernels for the flat and hierarchical indexers, each with a torch reference beside it."""
from . import _runtime  # noqa: F401  (must run before any kernel module is imported)
