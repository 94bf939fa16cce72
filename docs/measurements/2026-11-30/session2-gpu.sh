#!/usr/bin/env bash
# The second 2026-11-30 GPU session's measuring call, as sent (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-11-30/session2-gpu.sh
# Timing steps run one after another, alone on the GPU; tests last. Everything lands in $OUT/all.tgz,
# a summary in $OUT/summary.txt.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; R=/tmp/runs; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt

# 1. the headline at this commit: chunk (random, structured) with every HISA variant
step chunk 130 python -m hisa_bench speed --format csv --out $R --lengths 32k,64k,128k \
  --backend flat,hisa,hisa-fused,hisa-raw --inputs random,structured --rep-ms 60 --warmup-ms 10 --tag chunk
# 2. prefill and decode (decode: the pooled-key update inside HISA's time)
step pd 170 python -m hisa_bench speed --format csv --out $R --mode prefill,decode --lengths 32k,128k \
  --batch 64 --backend flat,hisa,hisa-fused --inputs random,structured --no-stages --rep-ms 100 --tag prefill-decode
# 3. the fused token stage's variants against the two-kernel path
step tokbench 110 python -m kernels.token_stage_bench --out $O --lengths 65536,131072 --rep 60
# 4. what limits each kernel of one 128K chunk
step ncu 70 ncu --clock-control none --profile-from-start off --csv --page details \
  --section SpeedOfLight --section Occupancy --section LaunchStats \
  python -m kernels.profile_chunk --extra hisa-fused
# 5. the tests this session changed or added
step tests 90 python -m pytest -q -rfEs --tb=short -p no:cacheprovider tests/test_token_stage_fused.py \
  tests/test_stage1_kernels.py tests/test_inputs.py::test_topk_mode_fails_a_broken_topk \
  tests/test_newcomer.py::test_demo_stops_on_ctrl_c tests/test_speed.py::test_decode_time_includes_the_pooled_key_update

cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/steps.txt; tail -n 25 $O/tokbench.out; tail -n 4 $O/tests.out; } > $OUT/summary.txt
cat $OUT/summary.txt
