#!/usr/bin/env bash
# Everything that needs a GPU, in one command (for the device machine; see README "GPU runs"):
# build the extension for this GPU, run the whole test suite (the `cuda` tests included),
# compute-sanitizer memcheck + racecheck, then the benchmarks. Logs and result files go to $OUT
# (the device tool brings that folder back) or to benchmarks/results/gpu-run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-run}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "== $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

step "build (CUDA kernels for this GPU)"
pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
python3 tools/check_kernels.py --archs "80-real;90-real" --skip-glue > "$OUT/check_kernels.log" 2>&1 || status=1
tail -3 "$OUT/check_kernels.log"

step "tests"
python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$OUT/tests.log" | tail -15
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "compute-sanitizer"
for tool in memcheck racecheck; do
  compute-sanitizer --tool "$tool" --error-exitcode 1 python3 tools/sanitizer_cases.py > "$OUT/sanitizer-$tool.log" 2>&1 \
    && echo "$tool: clean" || { echo "$tool: FAILED"; status=1; }
  tail -3 "$OUT/sanitizer-$tool.log"
done

step "benchmarks"
python3 -m xsep.bench --directions forward --out "$OUT" --name gpu-forward 2>&1 | tail -30 || status=1

exit $status
