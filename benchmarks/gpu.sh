#!/usr/bin/env bash
# Every GPU test and benchmark in one command, for a machine with a CUDA GPU:
#
#     bash benchmarks/gpu.sh            # from anywhere; PYTHON=... picks the interpreter
#
# Writes results/gpu_report.md: the device, then one section per step with its command,
# status, wall time and output (every table). The steps:
#   1. the tests that need CUDA (the test files using `requires_cuda`);
#   2. the kernel: benchmarks/bench_kernel.py on the GPU;
#   3. large N: benchmarks/bench_large_n.py on the GPU;
#   4. the callback: benchmarks/bench_callback.py with ResNet-50 at 224 px on MNIST;
#   5. one epoch of the paper's MNIST supervised config on a 20,000-image subset.
# Without CUDA it stops at once with a message and exit status 2, writing nothing. A step
# that fails is recorded as FAILED in the report, the others still run, and the script
# exits 1 at the end.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python}
SHARED_MNIST=../shared/data/mnist
REPORT=${GPU_REPORT:-results/gpu_report.md}  # GPU_REPORT: another path, for trying the script

fail() {
    echo "benchmarks/gpu.sh: FAILED: $*" >&2
    exit 2
}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    fail "no CUDA device: torch.cuda.is_available() is False for $PYTHON on $(hostname). This script runs the GPU tests and benchmarks and needs a CUDA GPU; nothing was run and $REPORT was not written."
fi
[ -f "$SHARED_MNIST/unpack.sh" ] || fail "MNIST not found at $SHARED_MNIST (the callback and paper steps need it); nothing was run."

WORK=$(mktemp -d -t dse_gpu_XXXXXX)
MNIST_ROOT="$WORK/data"
bash "$SHARED_MNIST/unpack.sh" "$MNIST_ROOT" >/dev/null || fail "could not unpack MNIST from $SHARED_MNIST into $MNIST_ROOT"
BODY="$WORK/report.md"
FAILED=()
failed_steps() { local IFS=';'; echo "${FAILED[*]}" | sed 's/;/; /g'; }

# run_step TITLE COMMAND...: run it, time it, append its output to the report.
run_step() {
    local title=$1
    shift
    local log="$WORK/step.log" start end status
    echo "== $title: $*" >&2
    start=$(date +%s)
    "$@" >"$log" 2>&1
    status=$?
    end=$(date +%s)
    {
        echo "## $title"
        echo
        echo "\`$*\`: $([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit status $status)"), $((end - start)) s"
        echo
        if [ -s "$WORK/table.md" ]; then
            cat "$WORK/table.md"
            echo
            rm -f "$WORK/table.md"
        fi
        echo '```text'
        grep -v -e '^GPU available' -e '^TPU available' -e 'LitLogger' -e '^LOCAL_RANK' "$log" | tail -n 150
        echo '```'
        echo
    } >>"$BODY"
    [ "$status" -eq 0 ] || FAILED+=("$title")
}

GPU_TESTS=$(grep -l "requires_cuda" tests/test_*.py | tr '\n' ' ')
if [ -n "$GPU_TESTS" ]; then
    # shellcheck disable=SC2086  # one word per test file
    run_step "GPU tests" "$PYTHON" -m pytest -q -rs -p no:cacheprovider $GPU_TESTS
else
    echo "## GPU tests"$'\n\n'"no test file uses requires_cuda"$'\n' >>"$BODY"
fi
run_step "Kernel" "$PYTHON" benchmarks/bench_kernel.py --device cuda
if [ -f benchmarks/bench_large_n.py ]; then
    run_step "Large N" "$PYTHON" benchmarks/bench_large_n.py --device cuda
else
    echo "## Large N"$'\n\n'"FAILED: benchmarks/bench_large_n.py does not exist"$'\n' >>"$BODY"
    FAILED+=("Large N")
fi
run_step "Callback, ResNet-50 at 224 px on MNIST" "$PYTHON" benchmarks/bench_callback.py --device cuda \
    --model resnet50 --image-size 224 --train-size 20000 --workers 8 --data-dir "$MNIST_ROOT" --out "$WORK/table.md"
run_step "Paper MNIST supervised config, one epoch on 20,000 images" "$PYTHON" -m dse_experiments.cli fit \
    --config configs/paper/mnist/supervised.yaml --trainer.max_epochs 1 --data.train_subset 20000 \
    --data.data_dir "$MNIST_ROOT" --trainer.default_root_dir "$WORK/paper_mnist" --trainer.enable_progress_bar false
HISTORY=$(find "$WORK/paper_mnist" -name 'dse_history*.csv' 2>/dev/null | head -n 1)
if [ -n "$HISTORY" ]; then
    { echo "Its DSE history ($(basename "$HISTORY")):"; echo; echo '```text'; cat "$HISTORY"; echo '```'; echo; } >>"$BODY"
fi

mkdir -p "$(dirname "$REPORT")"
{
    echo "# GPU report"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    "$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"Device: {p.name}, {p.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} visible; torch {torch.__version__}, CUDA {torch.version.cuda}")'
    echo
    if [ ${#FAILED[@]} -eq 0 ]; then echo "Every step passed."; else echo "FAILED steps: $(failed_steps)."; fi
    echo
    cat "$BODY"
} >"$REPORT"
echo "wrote $REPORT" >&2
rm -rf "$WORK"
[ ${#FAILED[@]} -eq 0 ] || { echo "benchmarks/gpu.sh: FAILED steps: $(failed_steps) (see $REPORT)" >&2; exit 1; }
