#!/usr/bin/env bash
# Third 2026-11-30 session, second GPU call (repo root on the H200):
#   HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-11-30/session3/gpu2.sh
# The pruned flat top-k and the row-count top-k switch: exactness compiled first, then the row
# top-k alone, the chunk and prefill/decode headline with flat, flat-pruned and hisa (random and
# structured), and Nsight Compute on one 128K chunk. Timing steps run alone, one after another.
set -u
export PYTHONPATH=$PWD
O=/tmp/o; R=/tmp/runs; mkdir -p $O $R
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider"
# 1. exactness of the new kernels, compiled (the interpreter proves nothing about races)
step exact 100 $T tests/test_topk_pruned.py tests/test_flat_pruned.py tests/test_flat_group_max.py tests/test_launch_configs.py
# 2. the row top-k alone: radix vs pruned (group maxima given), 1024 and 64 rows
step topk 120 python -m kernels.topk_bench --out $O --pruned --rows 1024 --widths 131072 --kinds random,structured,window,clusters --pruned-configs "maxnreg=0;num_warps=8:maxnreg=0;num_warps=2:maxnreg=0;TILE_G=32"
mv $O/topk_bench.json $O/topk_bench_1024.json 2>/dev/null
step topk64 50 python -m kernels.topk_bench --out $O --pruned --rows 64 --widths 131072 --kinds random,structured --pruned-configs "num_warps=8:maxnreg=0;num_warps=16:maxnreg=0"
# 3. the headline at this commit
step chunk 120 python -m hisa_bench speed --format csv --out $R --lengths 32k,64k,128k \
  --backend flat,flat-pruned,hisa --inputs random,structured --rep-ms 60 --warmup-ms 10 --tag chunk
step pd 170 python -m hisa_bench speed --format csv --out $R --mode prefill,decode --lengths 32k,128k \
  --batch 64 --backend flat,flat-pruned,hisa --inputs random,structured --no-stages --rep-ms 100 --tag prefill-decode
# 4. what limits each kernel of one 128K chunk, the pruned pipeline included
step ncu 80 ncu --clock-control none --profile-from-start off --csv --page details \
  --section SpeedOfLight --section Occupancy --section LaunchStats \
  python -m kernels.profile_chunk --extra flat-pruned
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o
{ cat $O/gpu.txt $O/steps.txt; tail -n 3 $O/exact.out; tail -n 8 $O/topk.out; tail -n 4 $O/topk64.out;
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(f.split("/")[3][-14:], r.get("mode"), r.get("inputs"), r.get("length"), r.get("backend"),
              r.get("status"), r.get("median_ms")[:6], "scores", (r.get("stage_scores_ms") or "")[:6],
              "topk", (r.get("stage_topk_ms") or r.get("stage_token_topk_ms") or "")[:6], "speedup", r.get("speedup", "")[:5])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
