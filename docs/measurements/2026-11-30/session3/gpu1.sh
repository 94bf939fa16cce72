#!/usr/bin/env bash
# Third 2026-11-30 session, first GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-11-30/session3/gpu1.sh
# 1. row top-k launch configs against the row count (64 rows: decode; 1024: a chunk) and the row
#    width (1024: HISA's block top-m at 128K; 8192: its token top-k; 131072: flat at 128K).
# 2. the whole test suite at this commit, in six processes after the timing.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; mkdir -p $O
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
CFGS="num_warps=4:maxnreg=128;num_warps=2:maxnreg=128;num_warps=1;num_warps=2;num_warps=4;num_warps=8"
for rows in 64 1024; do
  mkdir -p $O/topk-$rows
  step topk-$rows 150 python -m kernels.topk_bench --out $O/topk-$rows --rows $rows \
    --widths 1024,8192,131072 --kinds random,structured --configs "$CFGS"
done
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider --durations=5"
s=$(date +%s)
$T tests/test_gpu_integrity.py tests/test_flat_scores.py tests/test_topk.py tests/test_api.py tests/test_accuracy_gate.py > $O/g1.txt 2>&1 &
$T tests/test_gpu_real_shapes.py tests/test_hisa.py tests/test_stage1_kernels.py tests/test_token_stage_fused.py > $O/g2.txt 2>&1 &
$T tests/test_speed.py > $O/g3.txt 2>&1 &
$T tests/test_inputs.py > $O/g5.txt 2>&1 &
$T tests/test_compile_sm90.py > $O/g6.txt 2>&1 &
$T tests --ignore=tests/test_gpu_integrity.py --ignore=tests/test_flat_scores.py --ignore=tests/test_topk.py \
  --ignore=tests/test_api.py --ignore=tests/test_accuracy_gate.py --ignore=tests/test_gpu_real_shapes.py \
  --ignore=tests/test_hisa.py --ignore=tests/test_stage1_kernels.py --ignore=tests/test_token_stage_fused.py \
  --ignore=tests/test_speed.py --ignore=tests/test_inputs.py --ignore=tests/test_compile_sm90.py > $O/g4.txt 2>&1 &
wait
echo "tests $(( $(date +%s) - s ))s" >> $O/steps.txt
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 9 $O/topk-64.out $O/topk-1024.out; for g in 1 2 3 4 5 6; do tail -n 2 $O/g$g.txt; done; grep -h "^FAILED" $O/g*.txt; } > $OUT/summary.txt
cat $OUT/summary.txt
