#!/usr/bin/env bash
# Everything to run on a machine with an NVIDIA GPU, in one call, most important first:
#
#   info     the GPU, the driver, nvcc and torch
#   build    the package with CUDA (pip, no dependencies fetched: torch must be installed) and the C++ core,
#            its tests and example with CUDA, for CUDA_ARCH (default 90: H100/H200)
#   pytest   the CUDA tests: pytest -m cuda (each kernel against the CPU, opcheck on CUDA tensors)
#   ctest    the C++ tests (GoogleTest; test_cuda.cpp and test_ops_cuda.cpp: each CUDA kernel against plain loops
#            and the CPU kernels, as CI runs them on the CUDA simulator; test_model_run.cpp: the model runtime on
#            the GPU against the CPU)
#   gemm     bench/spike_gemm.py --device cuda, float32 then bfloat16 weights (the per-kernel columns give the
#            dispatch rates kCudaTiledAboveRate / kCudaTensorCoreAboveRate in cpp/include/spikeops/kernel_policy.hpp)
#   neuron   bench/neuron.py --device cuda --quick --no-compile (every model at T=16, with the fraction of the
#            device's copy bandwidth; the torch.compile column is left out: its compilations take minutes)
#   runtime  bench/cpp_inference.py --device cuda (the CSNN, random weights scaled to fire)
#   sanitize the C++ tests under compute-sanitizer (memcheck; racecheck for the CUDA kernels' shared memory)
#
#   bash bench/gpu_check.sh                    # all steps (about 5 minutes on 16 cores and an H200)
#   STEPS="build pytest" bash bench/gpu_check.sh
#
# The C++ tests need GoogleTest, which the GPU machine may lack and cannot download: prepare it here once with
#   mkdir -p .gtest && (cd .gtest && apt-get download libgtest-dev)
# and carry .gtest (git-ignored) with the call; build() unpacks it. Without GoogleTest the C++ library is built
# without its tests, and the ctest and sanitize steps fail saying so.
#
# Each step's log goes to $OUT/<step>.log (OUT defaults to ./gpu-out); a step that fails does not stop the
# others unless the build failed. A summary (exit status, seconds, last line of each log) is printed last.
set -u -o pipefail

OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PY=${PYTHON:-python3}
export ARCH=${CUDA_ARCH:-90}
export BUDGET=${BUDGET:-0.3}  # seconds of timing per benchmark measurement
export CPP_BUILD=${CPP_BUILD:-/tmp/spikeops-gpu-build}
STEPS=${STEPS:-"info build pytest ctest gemm neuron runtime sanitize"}
export PYTHONUNBUFFERED=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

summary=()
failed=()

# step NAME SECONDS COMMAND...: runs COMMAND (if NAME is in STEPS) with a time limit, output to $OUT/NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  local t0=$SECONDS
  echo "== $name ($(date +%T))"
  timeout "$limit" bash -c '"$@"' _ "$@" >"$OUT/$name.log" 2>&1  # (in bash -c: the functions below too)
  local rc=$?
  [ $rc -eq 0 ] || failed+=("$name")
  summary+=("$(printf '%-9s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" \
    "$(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1 | cut -c1-100)")")
  return $rc
}

info() {
  nvidia-smi -L && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv
  nvcc --version | tail -n 2
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
}

# The CMake options that find GoogleTest: the system's, or a libgtest-dev package carried in .gtest.
gtest_options() {
  local deb
  for deb in .gtest/*.deb; do
    [ -f "$deb" ] || continue
    mkdir -p /tmp/spikeops-gtest && dpkg -x "$deb" /tmp/spikeops-gtest || return 1
  done
  if [ -d /tmp/spikeops-gtest/usr ]; then
    echo "-DBUILD_TESTING=ON -DCMAKE_PREFIX_PATH=/tmp/spikeops-gtest/usr"
  elif ls /usr/lib/*/cmake/GTest /usr/lib/cmake/GTest >/dev/null 2>&1; then
    echo "-DBUILD_TESTING=ON"
  else
    echo "(GoogleTest not found: building without the C++ tests; see the top of this script)" >&2
    echo "-DBUILD_TESTING=OFF"
  fi
}

build() {
  SPIKEOPS_CUDA=ON "$PY" -m pip install --no-build-isolation --no-deps -v \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" -C build-dir=/tmp/spikeops-pip-build . &&
    "$PY" -c "import spikeops; i = spikeops.build_info(); print(i); assert i['cuda'], 'built without CUDA'; assert i['cuda_available'], 'CUDA built, but no GPU usable'" &&
    cmake -S . -B "$CPP_BUILD" -G Ninja -DSPIKEOPS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" $(gtest_options) &&
    cmake --build "$CPP_BUILD"
}

gemm() {
  "$PY" bench/spike_gemm.py --device cuda --budget "$BUDGET" &&
    "$PY" bench/spike_gemm.py --device cuda --dtype bfloat16 --budget "$BUDGET"
}

sanitize() {
  local t
  for t in spikeops_cuda_tests spikeops_ops_cuda_tests spikeops_model_run_tests; do
    [ -x "$CPP_BUILD/tests/cpp/$t" ] || { echo "$t was not built (GoogleTest missing?)"; return 1; }
    compute-sanitizer --tool memcheck --error-exitcode 1 "$CPP_BUILD/tests/cpp/$t" || return 1
  done
  for t in spikeops_cuda_tests spikeops_ops_cuda_tests; do
    compute-sanitizer --tool racecheck --error-exitcode 1 "$CPP_BUILD/tests/cpp/$t" || return 1
  done
}

export -f info gtest_options build gemm sanitize

step info 60 info
if ! step build 400 build; then
  echo "build failed:"
  tail -n 60 "$OUT/build.log"
  exit 1
fi
step pytest 300 "$PY" -m pytest tests/python -m cuda -q -rs
step ctest 120 ctest --test-dir "$CPP_BUILD" --output-on-failure --no-tests=error
step gemm 300 gemm
step neuron 150 "$PY" bench/neuron.py --device cuda --quick --no-compile --budget "$BUDGET"
step runtime 120 "$PY" bench/cpp_inference.py --device cuda --budget 1
step sanitize 300 sanitize

for name in "${failed[@]}"; do  # the end of each failed step's log
  echo "---- $name.log (end)"
  tail -n 40 "$OUT/$name.log"
done
if [ -f "$OUT/gemm.log" ]; then
  echo "---- gemm.log"
  grep -v '^\s*$' "$OUT/gemm.log" | tail -n 60
fi
echo "---- summary (logs in $OUT)"
printf '%s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ]
