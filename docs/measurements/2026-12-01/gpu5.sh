#!/usr/bin/env bash
# 2026-12-01, fifth GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu5.sh
# The Gluon score kernel with half-head units and the next tile's first product issued before the last epilogue;
# then Nsight Compute on the new default at 128K.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; mkdir -p $O
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
step bench 200 python -m kernels.flat_scores_wgmma_bench --out $O
step ncu 120 ncu --clock-control none --csv --page details -k regex:wgmma -c 1 \
  --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
  --section ComputeWorkloadAnalysis --section InstructionStats \
  python -m kernels.flat_scores_wgmma_bench --out /tmp --lengths 131072 --kinds random --configs "" --rep 5
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 25 $O/bench.out; tail -n 5 $O/bench.err
  python - <<'PY'
import csv
rows = list(csv.reader(open("/tmp/o/ncu.out")))
hdr = next((i for i, r in enumerate(rows) if "Metric Name" in r), None)
if hdr is not None:
    h = rows[hdr]; mi, ui, vi = h.index("Metric Name"), h.index("Metric Unit"), h.index("Metric Value")
    keep = ("Duration", "Compute (SM) Throughput", "Issue Slots Busy", "No Eligible", "Active Warps Per Scheduler",
            "Eligible Warps Per Scheduler", "Warp Cycles Per Issued Instruction", "Registers Per Thread",
            "Achieved Occupancy", "Executed Instructions", "SM Frequency", "Block Limit")
    for r in rows[hdr + 1:]:
        if len(r) > vi and r[mi].startswith(keep):
            print("ncu", r[mi], r[vi], r[ui])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
