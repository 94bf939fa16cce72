#!/usr/bin/env bash
# Third 2026-11-30 session, fifth GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-11-30/session3/gpu5.sh
# The pruned top-k's 'listed' path (crowded rows narrow over their candidate list): its tests
# compiled, then flat-pruned against flat and HISA at 64K and 128K, random and structured.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; R=/tmp/runs; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
step exact 120 python -m pytest -q -rfEs --tb=short -p no:cacheprovider tests/test_topk_pruned.py tests/test_flat_pruned.py
step topk 40 python -m kernels.topk_bench --out $O --pruned --rows 1024 --widths 131072 --kinds random,structured,window,zeros,clusters
step chunk 70 python -m hisa_bench speed --format csv --out $R --lengths 64k,128k \
  --backend flat,flat-pruned,hisa --inputs random,structured --rep-ms 100 --warmup-ms 10 --tag chunk-listed
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 3 $O/exact.out; tail -n 7 $O/topk.out
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:6], r.get("p20_ms")[:6], r.get("p80_ms")[:6], "scores", (r.get("stage_scores_ms") or "")[:6],
              "topk", (r.get("stage_topk_ms") or r.get("stage_token_topk_ms") or "")[:6], "x", r.get("speedup", "")[:5])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
