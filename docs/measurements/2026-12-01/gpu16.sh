#!/usr/bin/env bash
# 2026-12-01 (third session), sixteenth GPU call: HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu16.sh
# Wave quantisation: 1024 one-query gather programs fill 1.55 waves of the 660 slots (5 per SM: 96
# registers, 41 KB of shared memory each); a query's blocks split over several programs; copies of
# two blocks. The block stage with one query per program.
set -u
export PYTHONPATH=$PWD
O=/tmp/o16; mkdir -p $O
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
step gather 90 python -m kernels.gather_scores_wgmma_bench --out $O --lengths 65536,131072 \
  --configs "BLOCKS_PER_PROG=32;BLOCKS_PER_PROG=22;BLOCKS_PER_PROG=16;BLOCKS_PER_PROG=13;BLOCKS_PER_PROG=8;SUB=256"
step blockscores 60 python -m kernels.hisa_stage_bench --out $O --lengths 131072 \
  --configs "BLOCK_Q=1:num_warps=4;BLOCK_Q=1:num_warps=2"
tar czf $OUT/all.tgz -C /tmp o16
{ cat $O/gpu.txt $O/steps.txt; grep -v "^{" $O/gather.out | tail -n 30; grep -v "^{" $O/blockscores.out | tail -n 4; } > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
