#!/usr/bin/env bash
# Everything that needs a GPU (for the device machine; see README "GPU runs"), in stages. The device
# machine goes back after ~30 s idle, so each call starts bare: begin every call with `build`
# (about 45 s on 16 cores for one architecture; TORCH_CUDA_ARCH_LIST=9.0a on an H100: the wgmma
# forward exists only in sm_90a code). The machine has no internet: CuTe's headers (for the wgmma
# forward) come from the nvidia-cutlass wheel in .wheels/, which the device tool carries:
#   pip download nvidia-cutlass==4.2.0.0 --no-deps -d .wheels   # here, then run with carry [".wheels"]
#
#   bash tools/gpu_run.sh build tests sanitizer  # the cuda-marked tests, compute-sanitizer (~5 min)
#   bash tools/gpu_run.sh build bench            # every Xception layer, bf16 + TF32, 3 directions (~7 min)
#   bash tools/gpu_run.sh build bench-more       # the same in fp16 and exact fp32 (~7 min)
#   bash tools/gpu_run.sh build networks         # 34-layer stack + Xception, eager and compiled
#   bash tools/gpu_run.sh build forward-kernels  # the forward kernels and variants against each other (~6 min)
#   bash tools/gpu_run.sh build forward-phases profile  # each one's depthwise/GEMM split from timings
#                                                # (tools/forward_phases.py), then Nsight Compute
#   bash tools/gpu_run.sh build backward-kernels # first vs staged vs wgmma backward kernels, bf16 (~6 min)
#   bash tools/gpu_run.sh build profile          # Nsight Compute report of one layer's kernels
#
# No stage named: build tests sanitizer. Logs and result files go to $OUT/gpu-run.tgz (the device
# tool brings $OUT back) or to benchmarks/results/gpu-run. Bench result files are rewritten as rows come
# in, so a call cut short keeps what it measured. Exit status 1 if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# Under the device tool ($OUT set), which brings back at most 8 files, everything is packed into
# $OUT/gpu-run.tgz on exit; elsewhere the files stay in benchmarks/results/gpu-run.
if [ -n "${OUT:-}" ]; then
  DEVICE_OUT="$OUT"; OUT="$DEVICE_OUT/gpu-run"
  trap 'tar czf "$DEVICE_OUT/gpu-run.tgz" -C "$DEVICE_OUT" gpu-run && rm -rf "$OUT"' EXIT
else
  OUT=benchmarks/results/gpu-run
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build tests sanitizer)
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
      if ls .wheels/nvidia_cutlass-*.whl > /dev/null 2>&1; then
        python3 -m pip install --no-deps --no-index .wheels/nvidia_cutlass-*.whl > "$OUT/cutlass.log" 2>&1
      fi
      python3 -c "import cutlass_library" 2> /dev/null && echo "CuTe headers: found (the wgmma forward is built)" \
        || echo "CuTe headers: MISSING, the wgmma forward is left out (carry .wheels/, see the top of this file)"
      export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0a}"
      # The spill/MMA checks of tools/check_kernels.py run in CI; here only what the tests need.
      MAX_JOBS="${MAX_JOBS:-16}" python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 \
        || { tail -50 "$OUT/build.log"; exit 1; }
      echo "built in $((SECONDS - start)) s"
      ;;
    tests)
      step "tests (cuda-marked)"
      python3 -m pytest -q -rs -p no:cacheprovider -m cuda -n 4 tests 2>&1 | tee "$OUT/tests.log" | tail -25
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
      # The experimental variants, forced (none is chosen automatically yet): the halo forward (the
      # 3-stage resident forward where halo does not apply) and the staged backward kernels.
      for tool in memcheck racecheck; do
        XSEP_FWD_KERNEL=halo XSEP_FWD_STAGES=3 XSEP_BWD_KERNEL=staged compute-sanitizer --tool "$tool" --error-exitcode 1 \
          python3 tools/sanitizer_cases.py > "$OUT/sanitizer-experimental-$tool.log" 2>&1 \
          && echo "$tool (halo forward, staged backward): clean" \
          || { echo "$tool (halo forward, staged backward): FAILED"; status=1; }
        XSEP_FWD_KERNEL=wgmma XSEP_BWD_KERNEL=wgmma compute-sanitizer --tool "$tool" --error-exitcode 1 \
          python3 tools/sanitizer_cases.py > "$OUT/sanitizer-wgmma-$tool.log" 2>&1 \
          && echo "$tool (wgmma forward and backward): clean" \
          || { echo "$tool (wgmma forward and backward): FAILED"; status=1; }
      done
      # The hostile-call and hostile-value tests under memcheck: no call may touch memory it does not own.
      compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m pytest -q -p no:cacheprovider -m cuda \
        tests/test_bad_inputs.py tests/test_hostile_values.py > "$OUT/sanitizer-memcheck-hostile.log" 2>&1 \
        && echo "memcheck (hostile calls and values): clean" || { echo "memcheck (hostile calls and values): FAILED"; status=1; }
      tail -3 "$OUT/sanitizer-memcheck-hostile.log"
      ;;
    bench | bench-more)
      step "layer benchmarks ($stage)"
      modes=bf16,fp32-tf32; [ "$stage" = bench-more ] && modes=fp16,fp32
      python3 -m xsep.bench --modes "$modes" --directions forward,backward,forward_backward --reps 10 \
        --out "$OUT" --name "gpu-layers-${modes//,/-}" 2>&1 | grep -v "row/s" | tail -40
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    forward-kernels)
      step "forward kernels compared: wgmma (and with 64 pixels; 4 weight stages), resident (the default), halo, tiled"
      # variant:modes:environment
      for spec in "wgmma:bf16,fp16,fp32-tf32:XSEP_FWD_KERNEL=wgmma" "wgmma-64px:bf16:XSEP_FWD_KERNEL=wgmma XSEP_FWD_PIXELS=64" \
                  "wgmma-4stage:bf16:XSEP_FWD_KERNEL=wgmma XSEP_FWD_STAGES=4" \
                  "resident:bf16,fp32-tf32:" "halo:bf16,fp32-tf32:XSEP_FWD_KERNEL=halo" "tiled:bf16:XSEP_FWD_KERNEL=tiled"; do
        IFS=: read -r variant modes extra <<< "$spec"
        env XSEP_FWD_KERNEL=resident $extra python3 -m xsep.bench --modes "$modes" --directions forward --reps 10 \
          --baselines pytorch --out "$OUT" --name "gpu-forward-$variant" 2>&1 | grep -E "geometric|  (bf16|fp32)" || status=1
      done
      ;;
    forward-phases)
      # (At 728 channels the 128-pixel wgmma kernel has room for 5 weight slots; with 64 pixels, 8.)
      step "forward phases: time against output channels at 728 channels @19 (intercept: depthwise + launch; slope: GEMM)"
      for spec in "wgmma:XSEP_FWD_KERNEL=wgmma" "wgmma-64px:XSEP_FWD_KERNEL=wgmma XSEP_FWD_PIXELS=64" \
                  "wgmma-64px-4stage:XSEP_FWD_KERNEL=wgmma XSEP_FWD_PIXELS=64 XSEP_FWD_STAGES=4" \
                  "resident:XSEP_FWD_KERNEL=resident"; do
        IFS=: read -r variant extra <<< "$spec"
        for n in 32 128; do
          echo "-- $variant N=$n"
          env $extra python3 tools/forward_phases.py --shape "$n,728,19,19" 2>&1 | tee -a "$OUT/forward-phases.log" \
            | grep -E "dispatch|us per" || status=1
        done
      done
      ;;
    backward-kernels)
      step "backward kernels compared: first (default), staged and wgmma (experimental, XSEP_BWD_KERNEL); bf16"
      for kernel in first staged wgmma; do
        XSEP_BWD_KERNEL=$kernel python3 -m xsep.bench --modes bf16 --directions backward,forward_backward --reps 10 \
          --baselines pytorch --out "$OUT" --name "gpu-backward-$kernel" 2>&1 | grep -E "geometric|  bf16" || status=1
      done
      ;;
    profile)
      # The default kernels, then the wgmma ones (XSEP_*_KERNEL=wgmma; the default ones where not built).
      for variant in default wgmma; do
        step "Nsight Compute: the forward and backward kernels of 728->728 @19, N=32, bf16 ($variant)"
        kernels=(); [ "$variant" = wgmma ] && kernels=(XSEP_FWD_KERNEL=wgmma XSEP_BWD_KERNEL=wgmma)
        env "${kernels[@]}" ncu --set full -k regex:sepconv --launch-skip 4 --launch-count 4 -f \
          -o "$OUT/profile-$variant" python3 tools/profile_case.py > "$OUT/profile-$variant.log" 2>&1 || status=1
        ncu --import "$OUT/profile-$variant.ncu-rep" --page details > "$OUT/profile-$variant.txt" 2>&1 || status=1
        grep -E "^  [a-z_]+.*sepconv|Duration|Compute \(SM\) Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|L2 Cache Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued" \
          "$OUT/profile-$variant.txt" | head -60
      done
      ;;
    networks)
      step "network benchmarks"
      python3 -m xsep.bench --suite stack,xception --modes bf16 --reps 10 --out "$OUT" --name gpu-networks 2>&1 | tail -20
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    *) echo "unknown stage $stage (build, tests, sanitizer, bench, bench-more, networks, forward-kernels, forward-phases, backward-kernels, profile)"; exit 2 ;;
  esac
done
exit $status
