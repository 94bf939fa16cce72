#!/usr/bin/env bash
# 2026-12-01, second GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu2.sh
# The decode launch rules chosen from gpu1 (block scores in 256-key pieces, 4 warps for the block
# top-m of few rows, ~4 gather programs per SM): decode variants around them, the speed command's
# chunk, prefill and decode figures, and the kernel tests those rules touch, compiled.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; R=/tmp/runs; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider"
timeout 200 $T tests/test_hisa.py tests/test_topk.py tests/test_flat_scores.py tests/test_launch_configs.py > $O/tests.txt 2>&1 &
step decode 100 python -m kernels.decode_bench --out $O --variants split2048,split128,split512,blk8,gath4
step chunk 100 python -m hisa_bench speed --format csv --out $R --lengths 32k,64k,128k \
  --backend flat,hisa --inputs random,structured --rep-ms 60 --warmup-ms 10 --tag chunk
step pd 150 python -m hisa_bench speed --format csv --out $R --mode prefill,decode --lengths 32k,128k \
  --batch 64 --backend flat,hisa --inputs random,structured --no-stages --rep-ms 100 --tag prefill-decode
wait
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 25 $O/decode.out; tail -n 3 $O/tests.txt; grep -h "^FAILED\|^ERROR" $O/tests.txt
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("batch"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:6], "bs", (r.get("stage_block_scores_ms") or "")[:6],
              "ts", (r.get("stage_token_scores_ms") or "")[:6], "tk", (r.get("stage_token_topk_ms") or "")[:6])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
