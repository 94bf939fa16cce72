"""A newcomer's path through the CLI and the report (issue 12): defaults that fit the dump, Ctrl-C,
tables at 80 columns, slow paths refused, one-line dump errors, CLI conventions, documents a clone
has, and figures a reader can read. One test (or more) per item."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import kernel_device, run_cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def short_dump(tmp_path_factory):
    """A 1024-key synthetic dump: far too short for the long-context defaults (top-k 2048, B 128, m 64)."""
    from hisa_bench.inputs.dump import save_dump
    from hisa_bench.inputs.synthetic import SyntheticConfig, generate

    layers, meta = generate(SyntheticConfig(layers=2, keys=1024, queries=24, heads=2, dim=16, seed=3))
    return save_dump(tmp_path_factory.mktemp("dump") / "short.pt", layers, meta)


# --- 1. defaults that fit the dump; the report never trades a good page for nothing ---------------

def test_iou_defaults_fit_a_short_dump_and_say_so(short_dump, tmp_path):
    code, out, err = run_cli(["iou", "--dump", str(short_dump), "--out", str(tmp_path), "--format", "json"])
    assert code == 0, err
    from hisa_bench.commands.iou import fitted_defaults

    obj = json.loads(out)
    longest = int(re.search(r"holds (\d+) keys", err).group(1))
    topk, b, m = fitted_defaults(longest)
    assert (obj["config"]["topk"], obj["config"]["block_size"], obj["config"]["blocks"]) == (topk, b, m)
    assert topk < 2048 and f"using --topk {topk} --block-size {b} --blocks {m}" in err
    assert obj["overall"]["trivial"] < obj["overall"]["queries"]       # something was measured
    assert obj["overall"]["hisa"]["iou_mean"] is not None


def test_iou_says_which_options_fit_when_every_query_is_trivial(short_dump, tmp_path):
    code, out, err = run_cli(["iou", "--dump", str(short_dump), "--out", str(tmp_path), "--topk", "2048",
                              "--block-size", "128", "--blocks", "64"])
    assert code == 0
    assert re.search(r"nothing to measure; options that fit its \d+ keys: --topk \d+ --block-size \d+ --blocks \d+", err)


def test_fitted_defaults():
    from hisa_bench.commands.iou import fitted_defaults

    assert fitted_defaults(4096) == (256, 32, 16)
    assert fitted_defaults(131072) == (2048, 128, 64)
    for n in (100, 1024, 4096, 16384):
        topk, b, m = fitted_defaults(n)
        assert m * b >= topk and m * b < n      # covers top-k, and leaves non-trivial queries


def test_report_takes_each_page_from_the_newest_run_that_has_its_data(tmp_path):
    import pandas as pd
    from tests.test_report import make_iou_run
    from hisa_bench.report import build_report

    runs = tmp_path / "runs"
    good = make_iou_run(runs, name="iou-20261129-100000")
    bad = make_iou_run(runs, name="iou-20261130-100000", points=((128, 64),), speed_grid=False)
    pq = pd.read_csv(bad / "per_query.csv")
    pq["trivial"] = True
    pq.to_csv(bad / "per_query.csv", index=False)
    report = build_report(runs_dir=runs, out_dir=tmp_path / "out")
    names = [n for n, _ in report.pages]
    assert {"iou_layers", "iou_position", "grid"} <= set(names)
    footer = " ".join(t.get_text() for t in dict(report.pages)["iou_layers"].texts)
    assert good.name in footer and bad.name not in footer
    assert any(f"drawn from {good.name}" in n and bad.name in n and "only trivial" in n for n in report.notes)


# --- 2. Ctrl-C ----------------------------------------------------------------------------------

def _interrupt(*_a, **_k):
    raise KeyboardInterrupt


def test_ctrl_c_is_one_line_and_130(monkeypatch, short_dump, tmp_path):
    import hisa_bench.measure.run_iou as run_iou_module

    monkeypatch.setattr(run_iou_module, "run_iou", _interrupt)
    code, out, err = run_cli(["iou", "--dump", str(short_dump), "--out", str(tmp_path)])
    assert code == 130
    assert err.strip().splitlines()[-1] == "hisa-bench: interrupted"
    assert "Traceback" not in err


def test_demo_stops_on_ctrl_c(monkeypatch, tmp_path):
    import hisa_bench.commands.speed as speed_module
    import hisa_bench.measure.run_iou as run_iou_module

    called = []
    monkeypatch.setattr(speed_module, "_run", _interrupt)
    monkeypatch.setattr(run_iou_module, "run_iou", lambda **k: called.append(k))
    code, _, err = run_cli(["demo", "--device", kernel_device(), "--out", str(tmp_path / "demo")])
    assert code == 130 and called == []
    assert "demo done" not in err and err.strip().splitlines()[-1] == "hisa-bench: interrupted"


def test_interrupted_report_leaves_the_old_one_whole(monkeypatch, tmp_path):
    from tests.test_report import make_needle_run
    from hisa_bench.report import build_report, output

    make_needle_run(tmp_path / "runs")
    out = tmp_path / "out"
    build_report(runs_dir=tmp_path / "runs", out_dir=out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(output, "render_pdf", _interrupt)    # after every PNG was drawn
    code, _, err = run_cli(["report", "--runs", str(tmp_path / "runs"), "--out", str(out)])
    assert code == 130 and err.strip().splitlines()[-1] == "hisa-bench: interrupted"
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("attempt", range(4))     # an exit by the signal came about one time in six
def test_sigint_stops_a_real_process(tmp_path, attempt):
    out = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # SIGINT as a terminal delivers it: a test runner started in the background may have inherited
    # "ignore SIGINT", and Python keeps an ignored SIGINT ignored.
    proc = subprocess.Popen([sys.executable, "-m", "hisa_bench", "speed", "--device", "cpu", "--lengths", "16k",
                             "--mode", "prefill", "--out", str(out)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(out.iterdir())) and proc.poll() is None:
        time.sleep(0.2)     # wait until the run has started: its temporary run folder exists
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "hisa-bench: interrupted"
    assert "Traceback" not in stderr and stdout == ""
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]   # no run folder committed


# --- 3. tables at 80 columns ----------------------------------------------------------------------

def _render(table, width=80):
    from rich.console import Console

    buf = io.StringIO()
    Console(width=width, file=buf, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()


def _numeric_cells_whole(text, numbers):
    assert "…" not in text, text
    for n in numbers:
        assert n in text, (n, text)


def test_iou_table_fits_80_columns(short_dump, tmp_path):
    from hisa_bench.commands.iou import layer_columns
    from hisa_bench.tables import build

    code, out, err = run_cli(["iou", "--dump", str(short_dump), "--out", str(tmp_path), "--format", "json"])
    res = json.loads(out)
    rows = []
    for entry in res["layers"] + [dict(res["overall"], name="overall")]:
        for i, m in enumerate(res["config"]["methods"]):
            rows.append(dict(entry, method=m, first=i == 0, stats=entry[m.replace("-", "_")]))
    text = _render(build("t", layer_columns(), rows))
    assert max(len(line) for line in text.splitlines()) <= 80
    _numeric_cells_whole(text, [f"{res['overall']['hisa']['iou_mean']:.4f}",
                                f"{res['overall']['block_sparse']['recall_mean']:.4f}"])
    wide = _render(build("t", layer_columns(), rows, wide=True), width=200)
    assert "top128" in wide and "score rec" in wide


def test_speed_table_fits_80_columns_and_tflops_are_never_zero():
    from hisa_bench.commands.speed import speed_columns
    from hisa_bench.tables import build, sig

    rows = []
    for L, backend, ms, tf, sp in ((512, "flat", 741.12, 0.000123, 1.0), (16384, "hisa", 3689.869, 0.0412, 0.2),
                                   (131072, "block-sparse", 12.5, 955.2, 7.13)):
        rows.append({"mode": "prefill", "length": L, "batch": 64, "backend": backend, "block_size": 128 if backend
                     != "flat" else None, "blocks": 64, "status": "ok", "median_ms": ms, "p20_ms": ms, "p80_ms": ms,
                     "tflops": tf, "speedup": sp, "stage_pool_ms": 0.1, "note": ""})
    rows.append(dict(rows[0], status="failed-accuracy", note="3 of 16 rows differ from the reference"))
    text = _render(build("hisa-bench speed", speed_columns(), rows))
    assert max(len(line) for line in text.splitlines()) <= 80
    _numeric_cells_whole(text, ["3689.869", "741.120", "128/64", "7.13x", "128K"])
    wide = _render(build("t", speed_columns(), rows, wide=True), width=200)
    _numeric_cells_whole(wide, ["0.000123", "0.0412", "955"])
    assert sig(0.000123) == "0.000123" and sig(0.0) == "0" and sig(1.2e-7) != "0"


# --- 4. slow paths ----------------------------------------------------------------------------------

@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with a GPU the kernels engine runs compiled")
def test_kernels_engine_on_a_cpu_is_refused_with_the_option_that_works(short_dump, tmp_path):
    code, out, err = run_cli(["iou", "--dump", str(short_dump), "--engine", "kernels", "--device", "cpu",
                              "--out", str(tmp_path)])
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--engine reference" in lines[0] and "needs a CUDA GPU" in lines[0]
    assert not list(tmp_path.iterdir())


# --- 5. one-line dump errors ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, short_dump):
    import pickle

    import torch

    d = tmp_path_factory.mktemp("bad")
    (d / "truncated.pt").write_bytes(Path(short_dump).read_bytes()[:5000])
    (d / "notes.pt").write_text("these are not tensors\n")
    (d / "raw.pkl").write_bytes(pickle.dumps({"q": [1, 2, 3]}, protocol=4))
    (d / "empty.pt").write_bytes(b"")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, d / "code.pt")
    return d


@pytest.mark.parametrize("name,what", [("truncated.pt", "damaged or truncated torch.save archive"),
                                       ("notes.pt", "is a text file"), ("raw.pkl", "is a raw pickle"),
                                       ("empty.pt", "is empty"), ("code.pt", "their code was not run")])
def test_a_file_that_is_not_a_dump_gets_one_complete_line(bad_files, name, what, tmp_path):
    code, out, err = run_cli(["iou", "--dump", str(bad_files / name), "--out", str(tmp_path)])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err                      # no torch warning before it
    line = lines[0]
    assert what in line and "not a dump" in line
    assert "a dump is a dict of tensors saved with torch.save" in line and "never run" in line
    assert line.endswith("never run") and "pwned" not in out + err


# --- 6. CLI conventions -------------------------------------------------------------------------------

def test_version_short_help_and_module_entry():
    from hisa_bench import __version__

    code, out, _ = run_cli(["--version"])
    assert code == 0 and out.strip() == f"hisa-bench {__version__}"
    code, out, _ = run_cli(["-h"])
    assert code == 0 and "Usage: hisa-bench" in out and "--show-completion" in out
    code, out, _ = run_cli(["iou", "-h"])
    assert code == 0 and "--dump" in out
    proc = subprocess.run([sys.executable, "-m", "hisa_bench", "--version"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0 and proc.stdout.strip() == f"hisa-bench {__version__}"


def test_bare_command_prints_help_once():
    code, out, err = run_cli([])
    assert code == 0 and out.count("Usage:") == 1 and err == ""


def test_no_type_labels_on_flags_and_help_wraps_to_the_terminal(monkeypatch):
    from hisa_bench.cli import COMMANDS

    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(["--help"])
    # a command's summary flows to the terminal width: no line of it is cut short mid-sentence
    assert "plant\n" not in out and "compiled\n" not in out
    for name in COMMANDS:
        code, out, _ = run_cli([name, "--help"])
        if code == 0 and "Usage" in out:
            assert "<bool>" not in out, name
            assert max(len(line) for line in out.splitlines()) <= 80, name


def test_format_json_everywhere(tmp_path):
    code, out, _ = run_cli(["env", "--format", "json"])
    assert code == 0 and "torch" in json.loads(out)
    code, out2, _ = run_cli(["env", "--json"])
    assert code == 0 and json.loads(out2).keys() == json.loads(out).keys()
    code, out, err = run_cli(["generate", "--out", str(tmp_path / "g.pt"), "--keys", "1024", "--queries", "4",
                              "--layers", "1", "--heads", "2", "--dim", "16", "--format", "json"])
    assert code == 0 and json.loads(out)["dump"] == str(tmp_path / "g.pt")
    from tests.test_report import make_needle_run

    make_needle_run(tmp_path / "runs")
    code, out, err = run_cli(["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "o"),
                              "--format", "json"])
    obj = json.loads(out)
    assert code == 0 and obj["pages"] == ["summary", "needle", "environment"] and Path(obj["pdf"]).is_file()


@pytest.mark.parametrize("argv", [["iou", "--dump", ""], ["iou", "--dump", "x.pt", "--out", ""],
                                  ["speed", "--device", "cpu", "--backend", ""], ["speed", "--device", "cpu", "--out", ""],
                                  ["report", "--out", ""], ["needle", "--out", ""], ["generate", "--out", ""],
                                  ["demo", "--out", ""], ["capture", "--out", ""]])
def test_empty_paths_and_backends_are_errors(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "empty string" in err
    assert list(tmp_path.iterdir()) == []      # nothing written in the current folder


# --- 7. where things are ---------------------------------------------------------------------------

def test_readme_first_screen_says_how_to_run_the_command():
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:24])
    assert ".venv/bin/hisa-bench" in first_screen and "source .venv/bin/activate" in first_screen


def test_make_demo_ends_by_saying_how_to_run_the_command():
    make = (REPO / "Makefile").read_text()
    demo = make.split("\ndemo:")[1].split("\n\n")[0]
    assert "$(VENV)/bin/hisa-bench" in demo and "activate" in demo and "VENV   ?= .venv" in make


def test_the_project_carries_its_own_specs_and_no_outside_paths():
    for doc in ("semantics.md", "dump-format.md"):
        text = (REPO / "docs" / doc).read_text()
        assert len(text) > 2000, doc
    offenders = []
    for path in [REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("hisa_bench/**/*.py"),
                 *REPO.glob("kernels/*.py")]:
        text = path.read_text()
        if "shared/spec" in text or re.search(r"(?<![\w.])/(work|root|home)/", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


# --- 8. figures a reader can read ----------------------------------------------------------------------

def test_log_ticks_cover_a_narrow_range():
    from hisa_bench.report.style import log_ticks

    ticks = log_ticks(0.33, 0.49)
    assert len(ticks) >= 3 and all(0.33 <= t <= 0.49 for t in ticks)
    assert log_ticks(1, 1000)[:2] == [1, 10] or len(log_ticks(1, 1000)) <= 10
    wide = log_ticks(0.01, 300)
    assert 3 <= len(wide) <= 10


def test_every_figure_has_a_caption_and_no_page_is_near_empty(tmp_path):
    from tests.test_report import make_iou_run, make_needle_run, make_speed_run
    from hisa_bench.report import build_report

    runs = tmp_path / "runs"
    make_speed_run(runs)
    make_iou_run(runs)
    make_needle_run(runs)
    report = build_report(runs_dir=runs, out_dir=tmp_path / "out")
    for name, fig in report.pages:
        if name.startswith(("summary", "environment")):
            body = [t.get_text() for t in fig.texts if t.get_fontfamily() == ["monospace"]]
            assert len(report.pages) and (len("".join(body).splitlines()) >= 15 or not name[-1].isdigit()), name
            continue
        captions = [t.get_text() for t in fig.texts if t.get_gid() == "caption"]
        assert len(captions) == 1 and len(captions[0]) > 30, name
    needle = dict(report.pages)["needle"]
    sizes = [t.get_fontsize() for ax in needle.axes for t in ax.texts]
    assert sizes and min(sizes) >= 8


def test_committed_report_fidelity_pages_come_from_captured_tensors(tmp_path):
    from hisa_bench.report import build_report

    report = build_report(runs_dir=REPO / "reports" / "runs", out_dir=tmp_path / "out")
    pages = dict(report.pages)
    for name in ("iou_layers", "iou_position"):
        title = pages[name]._suptitle.get_text()
        assert "captured" in title and "smollm2-135m.pt" in title, title
    grid_titles = [ax.get_title() for ax in pages["grid"].axes]
    assert any(t.startswith("captured") for t in grid_titles) and any(t.startswith("synthetic") for t in grid_titles)
    # the run behind the captured pages was measured here, on a CPU, with options that fit the dump
    name = re.search(r"(iou-\d{8}-\d{6}[\w.-]*) \(", " ".join(t.get_text() for t in pages["iou_layers"].texts))
    env = json.loads((REPO / "reports" / "runs" / name.group(1) / "env.json").read_text())
    assert "--dump reports/dumps/smollm2-135m.pt" in env["command"]
    committed = sorted(p.name for p in (REPO / "reports" / "figures").glob("*.png"))
    assert {"iou_layers.png", "iou_position.png", "grid.png"} <= set(committed)


def test_help_does_not_import_torch():
    # `hisa-bench --help` and every command's --help answer at once: torch (about 2 s to import)
    # is loaded only by the work that needs it
    code = "import sys, hisa_bench.cli; print('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stdout + p.stderr
