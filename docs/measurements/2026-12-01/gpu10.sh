#!/usr/bin/env bash
# 2026-12-01, tenth GPU call: HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu10.sh
# The row top-k's register path with the early-exit bisection and the ties resolved by a bisection
# on the slot (no second prefix sum), against the landing commit's kernels (eecbe3f, copied to
# _base/ for this call); how much of a chunk's time is the GPU's (eager, CUDA graph, kernel sum);
# the speed command's chunk figures; the kernels' GPU tests.
set -u
export PYTHONPATH=$PWD
O=/tmp/o10; R=/tmp/runs10; mkdir -p $O $R $O/base $O/new
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
for v in base new; do
  P=$PWD; [ $v = base ] && P=$PWD/_base:$PWD
  for rows in 1024 64; do
    step topk_${v}_$rows 90 env PYTHONPATH=$P python -m kernels.topk_bench --out $O/$v --rows $rows \
      --widths 1024,8192,131072 --kinds random,structured,equal,zeros
  done
done
step chunk_timing 150 python docs/measurements/2026-12-01/chunk_timing.py --out $O/chunk_timing.json
step chunk 90 python -m hisa_bench speed --format csv --out $R --lengths 32k,64k,128k \
  --backend flat,hisa --inputs random,structured --rep-ms 60 --warmup-ms 10 --tag chunk
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider"
s=$(date +%s)
timeout 200 $T tests/test_topk.py > $O/g1.txt 2>&1 &
timeout 200 $T tests/test_topk_pruned.py tests/test_flat_pruned.py > $O/g2.txt 2>&1 &
timeout 200 $T tests/test_token_stage_fused.py tests/test_hisa.py tests/test_gpu_integrity.py > $O/g3.txt 2>&1 &
wait
echo "tests $(( $(date +%s) - s ))s" >> $O/steps.txt
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o10
{ cat $O/gpu.txt $O/steps.txt
  for g in 1 2 3; do tail -n 1 $O/g$g.txt; done; grep -h "^FAILED\|^ERROR" $O/g*.txt
  for f in $O/topk_*.out; do echo "== $f"; tail -n 14 $f; done
  tail -n 9 $O/chunk_timing.out
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs10/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:6], "pool", (r.get("stage_pool_ms") or "")[:6], "bs", (r.get("stage_block_scores_ms") or "")[:6],
              "bk", (r.get("stage_block_topk_ms") or "")[:6], "ts", (r.get("stage_token_scores_ms") or "")[:6],
              "tk", (r.get("stage_token_topk_ms") or "")[:6])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
