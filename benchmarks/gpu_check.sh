#!/usr/bin/env bash
# Every check that needs a GPU, as one prepared run sized for a short GPU lease (about 6 to 8
# minutes on an H100): the GPU's name, the GPU tests (tests/gpu: CUDA graphs against eager,
# the CUDA workload and its OOM survival, the memory hog and the matmul contention loop, the
# NVML sampler) and `bench-workload` on CUDA (gpt2-small tokens/s over batch x concurrency,
# and the graph/eager decode ratio against the >= 5x goal at batch 64).
#
# Run it from the repository root on a machine whose Python already has CUDA PyTorch. When
# the project's other dependencies are not installed there, fill .whl/ first, here, with
#   ../shared/tools/gpu-wheels.sh          (Python 3.12 wheels, about 25 MB)
# and the script installs them into /tmp/site. Usage:
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT, else ./gpu-check)
# Writes OUT_DIR/gpu.txt, test-gpu.txt, bench-workload.txt and summary.txt; exits 1 if a
# step failed. Each step has its own time limit, so one that hangs does not eat the lease.
set -uo pipefail

out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
py=${PYTHON:-python3}
status=0

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

step() {  # step NAME SECONDS COMMAND...: run it, keep its output, note its exit status
  local name=$1 limit=$2
  shift 2
  local began=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - began)) s" | tee -a "$out/summary.txt"
  [ "$rc" -eq 0 ] || status=1
}

: >"$out/summary.txt"
step gpu 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")' \
  | tee -a "$out/summary.txt"
step test-gpu 200 "$py" -m pytest -m gpu tests/gpu -q -rA -p no:cacheprovider
step bench-workload 330 "$py" benchmarks/bench_workload.py --device cuda
tail -n 25 "$out/bench-workload.txt" | tee -a "$out/summary.txt"
exit $status
