#!/usr/bin/env bash
# 2026-12-01, thirteenth GPU call (the device time left: about 3 minutes):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu13.sh
# Prefill timed as CUDA-graph replays like chunk and decode (gpu12 timed it eagerly: HISA's 32K
# prefill read 12.4 ms there against 8.8-9.5 in earlier runs of the same kernels), flat and HISA,
# random and structured; then the GPU integrity tests (graph capture and its eager fallback).
set -u
export PYTHONPATH=$PWD
O=/tmp/o13; R=/tmp/runs13; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
step prefill 90 python -m hisa_bench speed --format csv --out $R --mode prefill --lengths 32k,128k \
  --backend flat,hisa --inputs random,structured --no-stages --rep-ms 100 --tag prefill
step integrity 80 python -m pytest -q -rfEs --tb=short -p no:cacheprovider tests/test_gpu_integrity.py
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o13
{ cat $O/gpu.txt $O/steps.txt; tail -n 3 $O/integrity.out; grep -h "^FAILED\|^ERROR" $O/integrity.out
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs13/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:7], r.get("timing", ""))
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
