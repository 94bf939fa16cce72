"""The GPU's ceilings drawn under the achieved TFLOP/s and GB/s.

A speed run may carry its own measured ceilings, as an object named "ceilings" in speed.json (top
level or inside "config") or in env.json: {"<label>_tflops": number, "<label>_gbps": number,
"<label>_tbps": number}. Without one the report draws the NVIDIA H200 ceilings measured for this
project (shared/anchors.md, "Ceilings measured on the same H200", 2026-11-29) as labelled reference
lines: they are measured constants of that GPU, not results of the run."""
from __future__ import annotations

from dataclasses import dataclass

H200_SOURCE = "H200 reference, measured 2026-11-29 (anchors.md)"
# (label, value, unit): unit "TFLOP/s" or "GB/s".
H200_CEILINGS = (
    ("fp8 matmul (torch._scaled_mm)", 1242.0, "TFLOP/s"),
    ("bf16 dense matmul", 744.0, "TFLOP/s"),
    ("device copy (read+write)", 4260.0, "GB/s"),
)


@dataclass(frozen=True)
class Ceiling:
    label: str
    value: float
    unit: str      # "TFLOP/s" or "GB/s"
    source: str


def _from_mapping(mapping, source: str) -> list[Ceiling]:
    out = []
    for key in sorted(mapping):
        value = mapping[key]
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            continue
        name = str(key)
        low = name.lower()
        if low.endswith("_tflops"):
            out.append(Ceiling(name[: -len("_tflops")].replace("_", " "), float(value), "TFLOP/s", source))
        elif low.endswith("_gbps"):
            out.append(Ceiling(name[: -len("_gbps")].replace("_", " "), float(value), "GB/s", source))
        elif low.endswith("_tbps"):
            out.append(Ceiling(name[: -len("_tbps")].replace("_", " "), float(value) * 1000.0, "GB/s", source))
    return out


def ceilings_for(run) -> tuple[list[Ceiling], bool]:
    """(ceilings, measured_by_the_run). Falls back to the H200 reference figures."""
    if run is not None:
        speed_meta = run.meta.get("speed", {})
        candidates = (
            (speed_meta.get("ceilings"), f"measured in {run.name}/speed.json"),
            ((speed_meta.get("config") or {}).get("ceilings") if isinstance(speed_meta.get("config"), dict) else None,
             f"measured in {run.name}/speed.json"),
            (run.env.get("ceilings"), f"measured in {run.name}/env.json"),
        )
        for mapping, source in candidates:
            if isinstance(mapping, dict):
                found = _from_mapping(mapping, source)
                if found:
                    return found, True
    return [Ceiling(label, value, unit, H200_SOURCE) for label, value, unit in H200_CEILINGS], False
