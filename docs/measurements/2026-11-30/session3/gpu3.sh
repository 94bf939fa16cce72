#!/usr/bin/env bash
# Third 2026-11-30 session, third GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-11-30/session3/gpu3.sh
# Choices before the final call: the changed kernels' exactness compiled; where flat-pruned's group
# maxima come from (epilogue or a pass); the pruned top-k on tied and crowded rows; a histogram
# select for rows held in registers; HISA's block-score kernel capped at 128 registers.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; mkdir -p $O
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider"
step exact 120 $T tests/test_topk_pruned.py tests/test_flat_pruned.py tests/test_flat_group_max.py tests/test_topk.py ${EXTRA_TESTS:-}
step fpbench 100 python -m kernels.flat_pruned_bench --out $O --rep 40
step topk 70 python -m kernels.topk_bench --out $O --pruned --rows 1024 --widths 131072 --kinds random,structured,zeros,equal,clusters
mv $O/topk_bench.json $O/topk_bench_pruned.json 2>/dev/null
step hist 60 python -m kernels.topk_bench --out $O --rows 1024 --widths 1024,8192 --kinds random,structured ${HIST_CONFIGS:+--configs "$HIST_CONFIGS"}
step hisa 60 python -m kernels.hisa_stage_bench --out $O --configs "maxnreg=128"
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 3 $O/exact.out; tail -n 13 $O/fpbench.out; tail -n 6 $O/topk.out; tail -n 5 $O/hist.out; tail -n 4 $O/hisa.out; } > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
