#!/usr/bin/env bash
# 2026-12-01 (third session), seventeenth GPU call: HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu17.sh
# The session's last code commit (gather programs of at most 16 blocks): the speed command's chunk,
# prefill and decode (flat, flat-pruned, hisa; random and structured), the gather alone, the whole
# test suite.
set -u
export PYTHONPATH=$PWD
O=/tmp/o17; R=/tmp/runs17; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
step chunk 90 python -m hisa_bench speed --format csv --out $R --lengths 32k,64k,128k \
  --backend flat,flat-pruned,hisa --inputs random,structured --rep-ms 60 --warmup-ms 10 --tag chunk
step pd 150 python -m hisa_bench speed --format csv --out $R --mode prefill,decode --lengths 32k,128k \
  --batch 64 --backend flat,flat-pruned,hisa --inputs random,structured --no-stages --rep-ms 100 --tag prefill-decode
step gather 60 python -m kernels.gather_scores_wgmma_bench --out $O --lengths 65536,131072 --configs "BLOCKS_PER_PROG=64"
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider --durations=5"
s=$(date +%s)
timeout 280 $T tests/test_gpu_integrity.py tests/test_flat_scores.py tests/test_topk.py tests/test_api.py tests/test_accuracy_gate.py tests/test_flat_scores_wgmma.py > $O/g1.txt 2>&1 &
timeout 280 $T tests/test_gpu_real_shapes.py tests/test_hisa.py tests/test_stage1_kernels.py tests/test_token_stage_fused.py tests/test_topk_pruned.py tests/test_flat_pruned.py > $O/g2.txt 2>&1 &
timeout 280 $T tests/test_speed.py > $O/g3.txt 2>&1 &
timeout 280 $T tests/test_inputs.py > $O/g5.txt 2>&1 &
timeout 280 $T tests/test_compile_sm90.py > $O/g6.txt 2>&1 &
timeout 280 $T tests --ignore=tests/test_gpu_integrity.py --ignore=tests/test_flat_scores.py --ignore=tests/test_topk.py \
  --ignore=tests/test_api.py --ignore=tests/test_accuracy_gate.py --ignore=tests/test_flat_scores_wgmma.py \
  --ignore=tests/test_gpu_real_shapes.py \
  --ignore=tests/test_hisa.py --ignore=tests/test_stage1_kernels.py --ignore=tests/test_token_stage_fused.py \
  --ignore=tests/test_topk_pruned.py --ignore=tests/test_flat_pruned.py \
  --ignore=tests/test_speed.py --ignore=tests/test_inputs.py --ignore=tests/test_compile_sm90.py > $O/g4.txt 2>&1 &
wait
echo "tests $(( $(date +%s) - s ))s" >> $O/steps.txt
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o17
{ cat $O/gpu.txt $O/steps.txt
  for g in 1 2 3 4 5 6; do tail -n 1 $O/g$g.txt; done; grep -h "^FAILED\|^ERROR" $O/g*.txt
  grep -v "^{" $O/gather.out | tail -n 13
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs17/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("batch"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:6], "upd", (r.get("pool_update_ms") or "")[:6], r.get("timing", "")[:10], "bs", (r.get("stage_block_scores_ms") or "")[:6],
              "bk", (r.get("stage_block_topk_ms") or "")[:6], "ts", (r.get("stage_token_scores_ms") or "")[:6],
              "tk", (r.get("stage_token_topk_ms") or "")[:6])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
