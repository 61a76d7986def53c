#!/usr/bin/env bash
# Everything that needs a GPU (for the device machine; see README "GPU runs"), in stages that each
# fit one 10-minute device call; a warm machine keeps the build between calls:
#
#   bash tools/gpu_run.sh build tests     # build for this GPU, the `cuda` tests (CI runs the rest)
#   bash tools/gpu_run.sh sanitizer       # compute-sanitizer memcheck, racecheck, initcheck
#   bash tools/gpu_run.sh bench           # xsep bench: every Xception layer, N=32,128, all modes and directions
#   bash tools/gpu_run.sh networks        # xsep bench: 34-layer stack + Xception, eager and compiled
#
# No stage named: all of them, in that order. Logs and result files go to $OUT (the device tool
# brings that folder back) or to benchmarks/results/gpu-run. Exit status 1 if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-run}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build tests sanitizer bench networks)
status=0
step() { echo; echo "== $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

for stage in "${stages[@]}"; do
  case "$stage" in
    build)
      step "build (CUDA kernels for this GPU)"
      start=$SECONDS
      python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
      echo "built in $((SECONDS - start)) s"
      python3 tools/check_kernels.py --archs "80-real;90-real" --skip-glue > "$OUT/check_kernels.log" 2>&1 || status=1
      tail -3 "$OUT/check_kernels.log"
      ;;
    tests)
      step "tests (cuda-marked)"
      python3 -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 | tee "$OUT/tests.log" | tail -25
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    sanitizer)
      step "compute-sanitizer"
      for tool in memcheck racecheck initcheck; do
        # initcheck needs every tensor freshly cudaMalloc'd, so an unwritten output element is
        # uninitialised. (Some torch versions test only whether the variable is set: set for initcheck alone.)
        no_cache=(); [ "$tool" = initcheck ] && no_cache=(PYTORCH_NO_CUDA_MEMORY_CACHING=1)
        env "${no_cache[@]}" compute-sanitizer --tool "$tool" --error-exitcode 1 \
          python3 tools/sanitizer_cases.py > "$OUT/sanitizer-$tool.log" 2>&1 \
          && echo "$tool: clean" || { echo "$tool: FAILED"; status=1; }
        tail -3 "$OUT/sanitizer-$tool.log"
      done
      # The hostile-call and hostile-value tests under memcheck: no call may touch memory it does not own.
      compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m pytest -q -p no:cacheprovider -m cuda \
        tests/test_bad_inputs.py tests/test_hostile_values.py > "$OUT/sanitizer-memcheck-hostile.log" 2>&1 \
        && echo "memcheck (hostile calls and values): clean" || { echo "memcheck (hostile calls and values): FAILED"; status=1; }
      tail -3 "$OUT/sanitizer-memcheck-hostile.log"
      ;;
    bench)
      step "layer benchmarks"
      python3 -m xsep.bench --directions forward,backward,forward_backward --reps 15 --out "$OUT" --name gpu-layers \
        2>&1 | tail -40
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    networks)
      step "network benchmarks"
      python3 -m xsep.bench --suite stack,xception --modes bf16 --reps 10 --out "$OUT" --name gpu-networks 2>&1 | tail -20
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    *) echo "unknown stage $stage (build, tests, sanitizer, bench, networks)"; exit 2 ;;
  esac
done
exit $status
