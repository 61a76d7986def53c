#!/usr/bin/env bash
# Everything that needs a GPU (for the device machine; see README "GPU runs"), in stages. A session
# gets 15 minutes of device time in all (the machine's start included), one machine that goes back
# after ~30 s idle, so each call starts bare: begin every call with `build` (about 45 s on 16 cores
# for one architecture; TORCH_CUDA_ARCH_LIST=9.0a on an H100/H200: the wgmma kernels exist only in
# sm_90a code). The machine has no internet: CuTe's headers (for the wgmma kernels) come from the
# nvidia-cutlass wheel in .wheels/, which the device tool carries:
#   pip download nvidia-cutlass==4.2.0.0 --no-deps -d .wheels   # here, then run with carry [".wheels"]
#
# The one call a session with a GPU should make first (timeout_s 600; it stops itself in time):
#   GPU_RUN_BUDGET=540 bash tools/gpu_run.sh first
# = build, quick-tests, compare, sanitizer-new, tests: the newest kernels' correctness first, then
#   them against the default kernels and cuDNN, then compute-sanitizer on them, then every test.
#
#   bash tools/gpu_run.sh build tests sanitizer sanitizer-new  # the cuda-marked tests, compute-sanitizer
#   bash tools/gpu_run.sh build quick-tests      # only the tests that force each kernel variant (~2 min)
#   bash tools/gpu_run.sh build compare          # variants vs the default vs cuDNN, one process each
#                                                # direction (xsep bench --variants), bf16 + TF32
#   bash tools/gpu_run.sh build compare-forward  # the forward alone: default vs resident vs cuDNN
#   bash tools/gpu_run.sh build compare-backward # the backward alone (bf16): default vs the kernels it
#                                                # replaced and the input kernel's channel counts vs cuDNN
#   bash tools/gpu_run.sh build sanitizer-new    # memcheck + racecheck, the wgmma/halo/staged kernels forced
#   bash tools/gpu_run.sh build bench            # every Xception layer, bf16 + TF32, 3 directions (~7 min)
#   bash tools/gpu_run.sh build bench-more       # the same in fp16 and exact fp32 (~7 min)
#   bash tools/gpu_run.sh build networks         # 34-layer stack + Xception, eager and compiled
#   bash tools/gpu_run.sh build forward-phases profile  # each forward kernel's depthwise/GEMM split
#                                                # from timings (tools/forward_phases.py), then Nsight Compute
#   bash tools/gpu_run.sh build phase-clocks     # every layer's wgmma forward and backward input kernel
#                                                # split into phases by the CTAs' own clocks (~1 min)
#   bash tools/gpu_run.sh build profile          # Nsight Compute report of one layer's kernels, with the
#                                                # SASS lines where warps stall most (tools/ncu_hotspots.py)
#   bash tools/gpu_run.sh build kernel-times     # each kernel's time per call on 5 layers (torch.profiler)
#   bash tools/gpu_run.sh build profile-streamed # the same for the streamed forward (XSEP_FWD_KERNEL=streamed)
#   bash tools/gpu_run.sh build profile-staged   # the same with the depthwise phase from bands (XSEP_FWD_DW=staged)
#   bash tools/gpu_run.sh build profile-overlap  # the forward alone on the overlapped kernel (XSEP_FWD_KERNEL=overlap)
#   bash tools/gpu_run.sh build profile-overlap-pair  # its weights pairs (XSEP_FWD_PAIR=weights)
#
# No stage named: build tests sanitizer sanitizer-new. GPU_RUN_BUDGET=S: the script ends within S seconds of its
# start: a stage that cannot start with its minimum time left is skipped (and says so), and the
# commands run under `timeout` for what is left (bench keeps the rows it measured). Logs and result
# files go to $OUT/gpu-run.tgz (the device tool brings $OUT back), packed again after every stage
# so a call cut short still returns the stages it finished; without the device tool, to
# benchmarks/results/gpu-run. Exit status 1 if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# Under the device tool ($OUT set), which brings back at most 8 files, the files are written outside
# $OUT and packed into $OUT/gpu-run.tgz; elsewhere they stay in benchmarks/results/gpu-run.
if [ -n "${OUT:-}" ]; then
  DEVICE_OUT="$OUT"; OUT="$(mktemp -d)/gpu-run"
else
  DEVICE_OUT=""; OUT=benchmarks/results/gpu-run
fi
mkdir -p "$OUT"
pack() {
  [ -n "$DEVICE_OUT" ] || return 0
  tar czf "$DEVICE_OUT/gpu-run.tgz.part" -C "$(dirname "$OUT")" gpu-run && mv "$DEVICE_OUT/gpu-run.tgz.part" "$DEVICE_OUT/gpu-run.tgz"
}
trap pack EXIT
export PYTHONUNBUFFERED=1
stages=()
for arg in "$@"; do
  if [ "$arg" = first ]; then stages+=(build quick-tests compare sanitizer-new tests); else stages+=("$arg"); fi
done
[ ${#stages[@]} -eq 0 ] && stages=(build tests sanitizer sanitizer-new)
budget="${GPU_RUN_BUDGET:-0}"  # seconds; 0: no limit
status=0
quick_tests="every_forward_kernel or staged_kernels_match or dispatch_log or channels_last_copies or too_wide_for_shared_memory or default_kernels_follow or autotune"  # the quick-tests stage's selection
quick_tests_ran=""
# usable LIST: the variants of LIST whose forced-kernel quick test did not fail in this call (a kernel
# that faults leaves its process's CUDA context unusable: in a comparison, every row of the stage).
usable() { python3 tools/usable_variants.py "$OUT/quick-tests.log" "$1"; }
step() { echo; echo "== $* ($SECONDS s in)"; }
# Seconds left for a command, keeping 15 for packing; a large number without a budget.
left() { [ "$budget" -gt 0 ] && echo $((budget - SECONDS - 15)) || echo 100000; }
# enough N: whether a stage that needs about N seconds can start.
enough() {
  if [ "$(left)" -lt "$1" ]; then echo "skipped: $(left) s left of the budget, the stage needs ~$1 s"; return 1; fi
}
# limit N: seconds a command may run: the time left, at most N (so a hung kernel costs one stage,
# not the session).
limit() { local l; l=$(left); [ "$1" -lt "$l" ] && l=$1; [ "$l" -lt 1 ] && l=1; echo "$l"; }
# timed N CMD...: CMD under `timeout` for limit N (exit 124 when stopped there).
timed() { local n=$1; shift; timeout --signal=TERM --kill-after=10 "$(limit "$n")" "$@"; }
# Per-test time limit where pytest-timeout is installed (the thread method ends a worker stuck in a
# CUDA call, which a signal cannot interrupt; xdist starts another).
pytest_limit=(); python3 -c "import pytest_timeout" 2> /dev/null && pytest_limit=(--timeout 600 --timeout-method thread)

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
      enough 120 || continue
      skip=(); [ -n "$quick_tests_ran" ] && skip=(-k "not ($quick_tests)")  # not twice in one call
      timed 1800 python3 -m pytest -q -rs -p no:cacheprovider -m cuda -n 4 "${pytest_limit[@]}" tests "${skip[@]}" 2>&1 | tee "$OUT/tests.log" | tail -25
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    quick-tests)
      # Each kernel variant forced over its test grid (fresh processes), the backward's included.
      step "quick tests: every forward kernel variant and the staged / wgmma backward kernels, forced"
      enough 60 || continue
      timed 300 python3 -m pytest -q -rfEs -p no:cacheprovider -m cuda -n 4 "${pytest_limit[@]}" \
        tests/test_cuda.py tests/test_cuda_backward.py \
        -k "$quick_tests" 2>&1 | tee "$OUT/quick-tests.log" | tail -25
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      quick_tests_ran=1
      ;;
    compare)
      # One process per direction: each row checks and times cuDNN, the default kernels and each
      # variant (xsep bench --variants; `kernels` in the JSON says which kernel served each).
      step "compare: forward kernel variants against the default (wgmma on Hopper) and cuDNN (bf16, TF32)"
      enough 90 || continue
      timed 240 python3 -m xsep.bench --modes bf16,fp32-tf32 --directions forward --reps 10 --baselines pytorch \
        --variants "$(usable resident,streamed,streamed-3stage,XSEP_FWD_KERNEL=streamed+XSEP_FWD_STAGES=8,wgmma-4wg,wgmma-8stage)" --out "$OUT" \
        --name gpu-compare-forward 2>&1 \
        | grep -vE "row/s|^\s*$" | tail -60
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      pack
      ;&  # and on into the backward's comparison
    compare-backward)
      step "compare: backward kernel variants against the default (resident pw on Hopper) and cuDNN (bf16)"
      enough 90 || continue
      timed 240 python3 -m xsep.bench --modes bf16 --directions backward,forward_backward --reps 10 --baselines pytorch \
        --variants "$(usable bwd-64ch,bwd-pw1024,bwd-256ch,autotuned)" --out "$OUT" \
        --name gpu-compare-backward 2>&1 \
        | grep -vE "row/s|^\s*$" | tail -60
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    compare-forward)
      # The forward alone (bf16, TF32): the default kernels against the resident one, the wgmma one
      # everywhere (the default at 64 -> 128 before d6d19ed), its two-CTA build at 728 channels (the
      # default before the seventh session), the depthwise phase from bands of x (XSEP_FWD_DW=staged,
      # the ninth session's), the overlapped kernel (XSEP_FWD_KERNEL=overlap, the eleventh's: 16-bit
      # layers up to ~800 channels; elsewhere its rows are the default's) and its pair builds
      # (XSEP_FWD_PAIR=weights|z, the twelfth's: each weight chunk multicast into two CTAs, or each
      # tile's Z computed half by each), the forward's autotuner (XSEP_AUTOTUNE=1, the thirteenth's:
      # each shape's fastest of them all, timed in the warm-up), and cuDNN.
      step "compare: the default forward against the resident and wgmma variants and cuDNN (bf16, TF32)"
      enough 60 || continue
      timed 300 python3 -m xsep.bench --modes bf16,fp32-tf32 --directions forward --reps 10 --baselines pytorch \
        --variants "$(usable resident,wgmma,wgmma-2cta,wgmma-staged,overlap,overlap-pair-weights,overlap-pair-z,autotuned)" --out "$OUT" \
        --name gpu-compare-forward 2>&1 | grep -vE "row/s|^\s*$" | tail -50
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    sanitizer-new)
      step "compute-sanitizer on the newest kernels (overlapped forward in pairs and alone, wgmma forward from bands of x, wgmma and streamed forward, wgmma and resident-pw backward; halo forward, staged backward)"
      # The experimental kernels, forced (none is chosen automatically yet); the halo forward takes
      # channels_last inputs with channels in 16-byte vectors, the 3-stage resident forward the rest.
      for tool in memcheck racecheck; do
        for spec in "overlap-pair-weights:XSEP_FWD_KERNEL=overlap XSEP_FWD_PAIR=weights XSEP_BWD_KERNEL=wgmma" \
                    "overlap-pair-z:XSEP_FWD_KERNEL=overlap XSEP_FWD_PAIR=z XSEP_BWD_KERNEL=wgmma" \
                    "overlap:XSEP_FWD_KERNEL=overlap XSEP_BWD_KERNEL=wgmma" \
                    "wgmma-staged:XSEP_FWD_KERNEL=wgmma XSEP_FWD_CTAS=1 XSEP_FWD_DW=staged XSEP_BWD_KERNEL=wgmma" \
                    "wgmma:XSEP_FWD_KERNEL=wgmma XSEP_BWD_KERNEL=wgmma" \
                    "resident-pw:XSEP_FWD_KERNEL=wgmma XSEP_BWD_KERNEL=resident" \
                    "streamed:XSEP_FWD_KERNEL=streamed XSEP_BWD_KERNEL=wgmma" \
                    "halo-staged:XSEP_FWD_KERNEL=halo XSEP_FWD_STAGES=3 XSEP_BWD_KERNEL=staged"; do
          IFS=: read -r name knobs <<< "$spec"
          enough 45 || break 2
          env $knobs timeout --signal=TERM --kill-after=10 "$(limit 180)" compute-sanitizer --tool "$tool" --error-exitcode 1 \
            python3 tools/sanitizer_cases.py > "$OUT/sanitizer-$name-$tool.log" 2>&1 \
            && echo "$tool ($name): clean" || { echo "$tool ($name): FAILED"; status=1; }
          tail -2 "$OUT/sanitizer-$name-$tool.log"
        done
      done
      ;;
    sanitizer)
      step "compute-sanitizer"
      enough 120 || continue
      for tool in memcheck racecheck initcheck; do
        # initcheck needs every tensor freshly cudaMalloc'd, so an unwritten output element is
        # uninitialised. (Some torch versions test only whether the variable is set: set for initcheck alone.)
        no_cache=(); [ "$tool" = initcheck ] && no_cache=(PYTORCH_NO_CUDA_MEMORY_CACHING=1)
        env "${no_cache[@]}" timeout --signal=TERM --kill-after=10 "$(limit 300)" compute-sanitizer --tool "$tool" --error-exitcode 1 \
          python3 tools/sanitizer_cases.py > "$OUT/sanitizer-$tool.log" 2>&1 \
          && echo "$tool: clean" || { echo "$tool: FAILED"; status=1; }
        tail -3 "$OUT/sanitizer-$tool.log"
      done
      # The hostile-call and hostile-value tests under memcheck: no call may touch memory it does not own.
      timed 600 compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m pytest -q -p no:cacheprovider -m cuda \
        tests/test_bad_inputs.py tests/test_hostile_values.py > "$OUT/sanitizer-memcheck-hostile.log" 2>&1 \
        && echo "memcheck (hostile calls and values): clean" || { echo "memcheck (hostile calls and values): FAILED"; status=1; }
      tail -3 "$OUT/sanitizer-memcheck-hostile.log"
      ;;
    bench | bench-more)
      step "layer benchmarks ($stage)"
      modes=bf16,fp32-tf32; [ "$stage" = bench-more ] && modes=fp16,fp32
      enough 120 || continue
      timed 1800 python3 -m xsep.bench --modes "$modes" --directions forward,backward,forward_backward --reps 10 \
        --out "$OUT" --name "gpu-layers-${modes//,/-}" 2>&1 | grep -v "row/s" | tail -40
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    forward-phases)
      # (At 728 channels the 128-pixel wgmma kernel has room for 5 weight slots; with 64 pixels, 16.)
      step "forward phases: time against output channels at 728 channels @19 (intercept: depthwise + launch; slope: GEMM)"
      for n in 32 128; do
        enough 60 || break
        timed 300 python3 tools/forward_phases.py --shape "$n,728,19,19" \
          --variants wgmma,streamed,wgmma-4wg,resident 2>&1 \
          | tee -a "$OUT/forward-phases.log" | grep -E "dispatch|us per" || status=1
      done
      ;;
    phase-clocks)
      # Every Xception layer's wgmma forward and staged input-gradient kernel, phase by phase, from
      # the clocks their CTAs stamp (XSEP_PHASE_CLOCKS=1): the default kernels and the variants that
      # change the forward's depthwise phase or the input kernel's channels; the overlapped forward's
      # CTAs sum each role's phases (producers' depthwise and waits, the consumer's GEMM and waits).
      step "phase clocks: each CTA's phases in the forward and the backward's input kernel (N=32, bf16 + TF32)"
      enough 45 || continue
      timed 300 python3 tools/phase_clocks.py --batch 32 --dtype bfloat16,float32 \
        --variants "$(usable default,overlap,overlap-pair-weights,overlap-pair-z,wgmma-2cta,wgmma-staged,bwd-64ch)" --json "$OUT/phase-clocks.json" 2>&1 \
        | tee "$OUT/phase-clocks.txt" | cut -c1-300
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    profile | profile-streamed | profile-staged | profile-overlap | profile-overlap-pair)
      # One forward and one backward of the default kernels (the NVTX range in profile_case.py),
      # then the SASS lines where the warps stall most (tools/ncu_hotspots.py); profile-streamed: the
      # forward alone on the streamed kernel (XSEP_FWD_KERNEL=streamed); profile-overlap: on the
      # overlapped one (XSEP_FWD_KERNEL=overlap), profile-overlap-pair: its weights pairs
      # (XSEP_FWD_PAIR=weights); profile-staged: with XSEP_FWD_DW=staged.
      # (skip, count: the last call's kernels by launch count, where the NVTX filter finds none.)
      name=$stage; kernels=regex:sepconv; knobs=(); skip=18; count=6
      [ "$stage" = profile-streamed ] && { kernels=regex:sepconv_fwd; knobs=(XSEP_FWD_KERNEL=streamed); skip=9; count=3; }
      [ "$stage" = profile-overlap ] && { kernels=regex:sepconv_fwd; knobs=(XSEP_FWD_KERNEL=overlap); skip=9; count=3; }
      [ "$stage" = profile-overlap-pair ] && { kernels=regex:sepconv_fwd; knobs=(XSEP_FWD_KERNEL=overlap XSEP_FWD_PAIR=weights); skip=9; count=3; }
      # profile-staged: the default kernels with the forward's depthwise phase from bands of x.
      [ "$stage" = profile-staged ] && knobs=(XSEP_FWD_DW=staged)
      step "Nsight Compute ($stage): 728->728 @19, N=32, bf16"
      enough 90 || continue
      env "${knobs[@]}" timeout --signal=TERM --kill-after=10 "$(limit 400)" ncu --set full --nvtx --nvtx-include "profiled" \
        -k "$kernels" -f -o "$OUT/$name" python3 tools/profile_case.py > "$OUT/$name.log" 2>&1 || status=1
      if [ ! -f "$OUT/$name.ncu-rep" ]; then  # the NVTX filter matched nothing: the last call's kernels by count
        echo "no kernel in the NVTX range; profiling by launch count"
        env "${knobs[@]}" timeout --signal=TERM --kill-after=10 "$(limit 400)" ncu --set full -k "$kernels" --launch-skip "$skip" \
          --launch-count "$count" -f -o "$OUT/$name" python3 tools/profile_case.py >> "$OUT/$name.log" 2>&1 || status=1
      fi
      ncu --import "$OUT/$name.ncu-rep" --page details > "$OUT/$name.txt" 2>&1 || status=1
      grep -E "^  [a-z_]+.*sepconv|Duration|Compute \(SM\) Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|L2 Cache Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued" \
        "$OUT/$name.txt" | head -80
      ncu --import "$OUT/$name.ncu-rep" --page source --csv --print-source sass > "$OUT/$name-source.csv" 2> "$OUT/$name-source.log" \
        && python3 tools/ncu_hotspots.py "$OUT/$name-source.csv" --top 25 | tee "$OUT/$name-hotspots.txt" | head -120 \
        || { echo "source page export failed:"; tail -5 "$OUT/$name-source.log"; status=1; }
      rm -f "$OUT/$name-source.csv"  # large; the hotspots and the report keep what it says
      ;;
    kernel-times)
      # Each kernel's time per call (torch.profiler), forward and backward, on four Xception layers.
      step "kernel times: which kernel of each direction takes the time (bf16, N=32; 728 @37 at N=128)"
      enough 45 || continue
      timed 120 python3 tools/kernel_times.py --shape 32,128,147,147,128,3,1 --shape 32,64,147,147,128,3,1 \
        --shape 32,256,74,74,256,3,1 --shape 32,728,19,19,728,3,1 --shape 128,728,37,37,728,3,1 2>&1 \
        | tee "$OUT/kernel-times.txt" | cut -c1-170 | grep -v Warn
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    networks)
      step "network benchmarks"
      enough 120 || continue
      timed 1800 python3 -m xsep.bench --suite stack,xception --modes bf16 --reps 10 --out "$OUT" --name gpu-networks 2>&1 | tail -20
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      ;;
    *) echo "unknown stage $stage (first, build, quick-tests, compare, compare-forward, sanitizer-new, tests, sanitizer, bench, bench-more, networks, kernel-times, forward-phases, phase-clocks, profile, profile-streamed, profile-staged, profile-overlap, profile-overlap-pair)"; exit 2 ;;
  esac
  pack
done
echo; echo "== done in $SECONDS s"
exit $status
