"""`hisa-bench env`: where kernels will run, and with what."""
from __future__ import annotations

import json

import typer


def register(app: typer.Typer):
    @app.command("env")
    def env(fmt: str = typer.Option("text", "--format", help="text, or json (the environment stamp that every "
                                    "run folder records)."),
            as_json: bool = typer.Option(False, "--json", help="Same as --format json.")):
        """Print GPU, driver, torch, triton and python versions, and whether kernels run compiled
        or interpreted."""
        from ..environment import stamp
        from ..errors import check_format

        as_json = check_format(fmt) == "json" or as_json

        s = stamp(command="hisa-bench env")
        if as_json:
            print(json.dumps(s, indent=1))
            return
        gpu = s["gpu"]
        rows = [
            ("gpu", f"{gpu['name']} (sm {gpu['capability']}, {gpu['multiprocessors']} SMs, {gpu['memory_gib']} GiB)" if gpu else "none"),
            ("driver", (gpu or {}).get("driver") or "-"),
            ("clocks", json.dumps((gpu or {}).get("clocks")) if gpu and gpu.get("clocks") else "-"),
            ("kernels", s["kernels"]),
            ("device", s["device"]),
            ("torch", f"{s['torch']} (cuda {s['cuda']})"),
            ("triton", s["triton"]),
            ("python", s["python"]),
            ("git commit", s["git_commit"] or "-"),
        ]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
