#!/usr/bin/env bash
# 2026-12-01, eleventh GPU call: HISA_BENCH_GIT_COMMIT=<sha> bash docs/measurements/2026-12-01/gpu11.sh
# (1) The row top-k: the landing commit's kernels (eecbe3f, copied to _base/ and run from there, so
#     that `python -m` imports them) against this commit's (early exit, zero shortcut) and its
#     TIE_SCAN variant. (2) HISA's gather: the Triton kernel, its scale-first variant and the Gluon
#     kernel's variants. (3) The speed command: chunk (HISA's step now updates its pooled keys instead
#     of re-pooling the context) and prefill. (4) The GPU tests of the kernels changed.
set -u
export PYTHONPATH=$PWD
O=/tmp/o11; R=/tmp/runs11; mkdir -p $O $R $O/base $O/new $O/tiescan $O/gather
step() { local name=$1 t=$2; shift 2; local s=$(date +%s)
  timeout "$t" "$@" > $O/$name.out 2> $O/$name.err; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s" | tee -a $O/steps.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/gpu.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $O/gpu.txt
K="--kinds random,structured,zeros,equal,clusters"
(cd _base && step topk_base_1024 60 env PYTHONPATH=$PWD python -m kernels.topk_bench --out $O/base --rows 1024 --widths 1024,8192 $K)
(cd _base && step topk_base_64 60 env PYTHONPATH=$PWD python -m kernels.topk_bench --out $O/base --rows 64 --widths 1024,8192 $K)
(cd _base && step topk_base_long 60 env PYTHONPATH=$PWD python -m kernels.topk_bench --out $O/base --rows 1024 --widths 131072 --kinds random,structured)
step topk_new_1024 60 python -m kernels.topk_bench --out $O/new --rows 1024 --widths 1024,8192 $K --configs "TIE_SCAN=1"
step topk_new_64 60 python -m kernels.topk_bench --out $O/new --rows 64 --widths 1024,8192 $K --configs "TIE_SCAN=1"
step topk_new_long 60 python -m kernels.topk_bench --out $O/new --rows 1024 --widths 131072 --kinds random,structured
step gather 120 python -m kernels.gather_scores_wgmma_bench --out $O/gather --lengths 65536,131072 \
  --kinds random,structured --configs "A_IN_REGS=1;GROUP=2;GROUP=8;STAGES=6;STAGES=3;SUB=128:num_warps=8" --rep 60
step chunk 100 python -m hisa_bench speed --format csv --out $R --lengths 32k,64k,128k \
  --backend flat,hisa --inputs random,structured --rep-ms 60 --warmup-ms 10 --tag chunk
step prefill 100 python -m hisa_bench speed --format csv --out $R --mode prefill --lengths 128k \
  --backend hisa --inputs random,structured --no-stages --rep-ms 100 --tag prefill
T="python -m pytest -q -rfEs --tb=short -p no:cacheprovider"
s=$(date +%s)
timeout 170 $T tests/test_topk.py tests/test_gather_scores_wgmma.py > $O/g1.txt 2>&1 &
timeout 170 $T tests/test_hisa.py tests/test_token_stage_fused.py tests/test_topk_pruned.py > $O/g2.txt 2>&1 &
wait
echo "tests $(( $(date +%s) - s ))s" >> $O/steps.txt
cp -r $R $O/runs
tar czf $OUT/all.tgz -C /tmp o11
{ cat $O/gpu.txt $O/steps.txt
  for g in 1 2; do tail -n 1 $O/g$g.txt; done; grep -h "^FAILED\|^ERROR" $O/g*.txt | head -20
  for f in $O/topk_*.out; do echo "== $f"; grep -v "^{" $f | tail -n 12; done
  grep -v "^{" $O/gather.out | tail -n 20
  python - <<'PY'
import csv, glob
for f in sorted(glob.glob("/tmp/runs11/*/speed.csv")):
    for r in csv.DictReader(open(f)):
        print(r.get("mode"), r.get("inputs")[:6], r.get("length"), r.get("backend"), r.get("status"),
              r.get("median_ms")[:6], "upd", (r.get("pool_update_ms") or "")[:6], "bs", (r.get("stage_block_scores_ms") or "")[:6],
              "bk", (r.get("stage_block_topk_ms") or "")[:6], "ts", (r.get("stage_token_scores_ms") or "")[:6],
              "tk", (r.get("stage_token_topk_ms") or "")[:6])
PY
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt
