#!/usr/bin/env bash
# 2026-12-01, first GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu1.sh
# Decode launch variants (kernels/decode_bench.py), Nsight Compute's stall and issue counters on the
# flat score kernel (one 128K chunk), then the whole test suite in six processes.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; mkdir -p $O
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
step decode 150 python -m kernels.decode_bench --out $O
step ncu 120 ncu --clock-control none --profile-from-start off --csv --page details -k regex:_flat_scores_kernel \
  --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
  --section ComputeWorkloadAnalysis --section InstructionStats \
  python -m kernels.profile_chunk --length 131072
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider --durations=5"
s=$(date +%s)
timeout 230 $T tests/test_gpu_integrity.py tests/test_flat_scores.py tests/test_topk.py tests/test_api.py tests/test_accuracy_gate.py > $O/g1.txt 2>&1 &
timeout 230 $T tests/test_gpu_real_shapes.py tests/test_hisa.py tests/test_stage1_kernels.py tests/test_token_stage_fused.py tests/test_topk_pruned.py tests/test_flat_pruned.py > $O/g2.txt 2>&1 &
timeout 230 $T tests/test_speed.py > $O/g3.txt 2>&1 &
timeout 230 $T tests/test_inputs.py > $O/g5.txt 2>&1 &
timeout 230 $T tests/test_compile_sm90.py > $O/g6.txt 2>&1 &
timeout 230 $T tests --ignore=tests/test_gpu_integrity.py --ignore=tests/test_flat_scores.py --ignore=tests/test_topk.py \
  --ignore=tests/test_api.py --ignore=tests/test_accuracy_gate.py --ignore=tests/test_gpu_real_shapes.py \
  --ignore=tests/test_hisa.py --ignore=tests/test_stage1_kernels.py --ignore=tests/test_token_stage_fused.py \
  --ignore=tests/test_topk_pruned.py --ignore=tests/test_flat_pruned.py \
  --ignore=tests/test_speed.py --ignore=tests/test_inputs.py --ignore=tests/test_compile_sm90.py > $O/g4.txt 2>&1 &
wait
echo "tests $(( $(date +%s) - s ))s" >> $O/steps.txt
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 54 $O/decode.out
  for g in 1 2 3 4 5 6; do tail -n 1 $O/g$g.txt; done; grep -h "^FAILED\|^ERROR" $O/g*.txt
  python - <<'PY'
import csv
rows = list(csv.reader(open("/tmp/o/ncu.out")))
hdr = next((i for i, r in enumerate(rows) if "Metric Name" in r), None)
if hdr is not None:
    h = rows[hdr]; mi, ui, vi = h.index("Metric Name"), h.index("Metric Unit"), h.index("Metric Value")
    keep = ("Duration", "Compute (SM) Throughput", "Issue Slots Busy", "Issued Warp Per Scheduler", "No Eligible",
            "Active Warps Per Scheduler", "Eligible Warps Per Scheduler", "Warp Cycles Per Issued Instruction",
            "Executed Ipc Active", "Registers Per Thread", "Achieved Occupancy", "SM Busy")
    for r in rows[hdr + 1:]:
        if len(r) > vi and r[mi].startswith(keep):
            print("ncu", r[mi], r[vi], r[ui])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
