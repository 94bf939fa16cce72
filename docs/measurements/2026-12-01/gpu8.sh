#!/usr/bin/env bash
# 2026-12-01, eighth GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu8.sh
# HISA decode regressed from 0.0746 to 0.0791 ms at 128K between gpu6 and gpu7: the decode step with
# the few-row top-k launches writing from registers (both paths passed the GPU suite in gpu7), and
# the speed command's decode figures at this commit.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; R=/tmp/runs; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
step decode 80 python -m kernels.decode_bench --out $O --variants tokreg,blkreg,bothreg --rep-ms 30
step pd 60 python -m hisa_bench speed --format csv --out $R --mode decode --lengths 32k,128k \
  --batch 64 --backend flat,hisa --inputs random,structured --no-stages --rep-ms 100 --tag decode
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 17 $O/decode.out; tail -n 3 $O/decode.err
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("backend"), r.get("status"), r.get("median_ms")[:6])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
