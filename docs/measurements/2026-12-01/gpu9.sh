#!/usr/bin/env bash
# 2026-12-01, ninth GPU call (repo root on the H200), the last device time of the session:
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu9.sh
# The landing commit's top-k defaults (short rows written from registers, long-row path compiled
# out): the row top-k, HISA and integrity tests compiled.
set -u
export PYTHONPATH=$PWD
O=/tmp/o9; mkdir -p $O
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider"
timeout 100 $T tests/test_topk.py tests/test_launch_configs.py tests/test_gpu_integrity.py > $O/g1.txt 2>&1 &
timeout 100 $T tests/test_hisa.py tests/test_topk_pruned.py > $O/g2.txt 2>&1 &
wait
tar czf $OUT/all.tgz -C /tmp o9
{ tail -n 1 $O/g1.txt; tail -n 1 $O/g2.txt; grep -h "^FAILED\|^ERROR" $O/g*.txt; } > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
