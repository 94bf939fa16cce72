#!/usr/bin/env bash
# 2026-12-01 (third session), fourteenth GPU call: HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu14.sh
# The Gluon gather with whole-block copies (SUB=128: two 64-key products per copied tile) against
# its default; HISA's block-score launch variants, now as CUDA-graph replays in two rounds; prefill
# (now CUDA-graph replays) and decode; the GPU tests these changes touch.
set -u
export PYTHONPATH=$PWD
O=/tmp/o14; R=/tmp/runs14; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider --durations=5"
timeout 200 $T tests/test_gather_scores_wgmma.py > $O/t1.txt 2>&1 &
step gather 90 python -m kernels.gather_scores_wgmma_bench --out $O --lengths 65536,131072 \
  --configs "SUB=128:STAGES=2:GROUP=2;SUB=128:STAGES=3:GROUP=2;SUB=128:STAGES=2:GROUP=1;SUB=128:STAGES=3:GROUP=1;SUB=128:STAGES=2:GROUP=4;STAGES=4"
wait
step blockscores 120 python -m kernels.hisa_stage_bench --out $O --lengths 65536,131072 --rounds 2 \
  --configs "maxnreg=128;BLOCK_Q=2;BLOCK_Q=2:num_warps=4;BLOCK_Q=2:num_warps=4:num_stages=3;BLOCK_Q=2:num_warps=4:maxnreg=128"
step pd 150 python -m hisa_bench speed --format csv --out $R --mode prefill,decode --lengths 32k,128k \
  --batch 64 --backend flat,flat-pruned,hisa --inputs random,structured --no-stages --rep-ms 100 --tag prefill-decode
timeout 200 $T tests/test_gpu_integrity.py tests/test_speed.py > $O/t2.txt 2>&1
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o14
{ cat $O/gpu.txt $O/steps.txt
  tail -n 1 $O/t1.txt $O/t2.txt; grep -h "^FAILED\|^ERROR" $O/t*.txt
  grep -v "^{" $O/gather.out | tail -n 30
  grep -v "^{" $O/blockscores.out | tail -n 24
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs14/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("batch"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:6], "upd", (r.get("pool_update_ms") or "")[:6], r.get("timing", "")[:10])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
