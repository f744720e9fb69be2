#!/usr/bin/env bash
# One-shot GPU session: the benchmarks and a quick GPU test subset, in one command that ends within 7 minutes (a
# device machine is lent for 15 minutes of device time in all, machine start ~1-2 minutes included, 10 minutes per
# command at most). See bench/README.md.
#
#   bash bench/gpu_session.sh [--quick] [--only info,linear,dit_block,tests]
#
# Run from the repository root. Steps, in this order (the numbers that matter first), each under `timeout` against
# one shared deadline (SESSION_BUDGET seconds, default 420); a step that fails or times out never stops the next, and
# each writes its JSON as it finishes (a session cut short still returns what it measured):
#   info       bench/device_info.py: versions, probed capabilities, the backend each request picks per scheme
#   linear     bench/linear.py at M = 32760 and 75600 first, then 4096 and 256 (JSON rewritten after each shape),
#              Triton tuning off (COMFYUI_DIT_QUANT_TUNE=0 unless set: heuristic configs, no tuning compiles);
#              on sm_90+ the 8-bit Triton GEMMs twice: <backend>[tma] and <backend>[pointer], same config
#   dit_block  bench/dit_block.py: one Wan-14B block, bf16 vs each scheme (needs diffusers, see below)
#   tests      python -m pytest tests/gpu, the quick subset (DIT_QUANT_GPU_QUICK=1; xdist workers, pytest-timeout)
# The time plan (each step's cap and the total) is printed first. --quick: a smoke run (small benchmark shapes).
# Without CUDA everything runs on the CPU in smoke sizes and tests/gpu skips (tests/test_gpu_session.py runs it so).
#
# Results, flat in $OUT (the device machine's return folder; ./bench/out when unset), 6 files (7 on CUDA):
#   session.log  gpu_tests.log  gpu_tests.xml  device-<gpu>.json  linear-<gpu>.json  dit_block-<gpu>.json
#   tuning-<gpu>.json  the Triton GEMM configs tuned at first use (kernels/triton_tuning.py) by linear and dit_block,
#                      copied from the session's tuning cache $COMFYUI_DIT_QUANT_CACHE_DIR (default
#                      $TMPDIR/dit_quant_tuning, kept across commands on a warm machine) and printed in session.log;
#                      (none when tuning is off); tests/gpu tunes only in its own tuning tests (temporary caches).
#
# Imports work offline: the package is put on PYTHONPATH as `comfyui_dit_quant` through a symlink to this
# checkout (no pip, no build backend needed), and the wheels in .whl/ (git-ignored) are installed with
# `pip install --no-index --no-deps --target` into a temporary folder on PYTHONPATH (unzipped when pip is missing).
# The device machine has torch, triton, safetensors, transformers, huggingface_hub, numpy, pytest, but not diffusers.
# Prepare .whl once, on a machine with network, in the repository root (diffusers is pure Python; its other
# requirements are on the device; importlib_metadata is only imported on Python < 3.8):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1
# and pass it along: run tool command `bash bench/gpu_session.sh`, carry [".whl"].
#
# Environment: PYTHON (default python3), OUT, SESSION_BUDGET, INFO_S / TESTS_S / LINEAR_S / DIT_S (per-step caps,
# seconds), GPU_TEST_WORKERS (xdist workers, default 6), PYTEST_EXTRA (more pytest arguments),
# COMFYUI_DIT_QUANT_CACHE_DIR (the tuning cache), COMFYUI_DIT_QUANT_TUNE=0 (benchmark the heuristic configs only).

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/bench/out}
BUDGET=${SESSION_BUDGET:-420}
INFO_S=${INFO_S:-40}
LINEAR_S=${LINEAR_S:-210}
DIT_S=${DIT_S:-80}
TESTS_S=${TESTS_S:-90}
QUICK=0
ONLY="info,linear,dit_block,tests"

while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --only) ONLY=${2:?--only needs a comma-separated list}; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-${TMPDIR:-/tmp}/dit_quant_triton_cache}
export COMFYUI_DIT_QUANT_CACHE_DIR=${COMFYUI_DIT_QUANT_CACHE_DIR:-${TMPDIR:-/tmp}/dit_quant_tuning}
export COMFYUI_DIT_QUANT_TUNE=${COMFYUI_DIT_QUANT_TUNE:-0}
START=$SECONDS
DEADLINE=$((START + BUDGET))
SUMMARY=()
FAILURES=0

wants() { [[ ",$ONLY," == *",$1,"* ]]; }

# The time plan: each wanted step's cap, in order, and when the session ends at the latest.
print_plan() {
    local at=0 step cap
    echo "== time plan (budget ${BUDGET}s = $((BUDGET / 60)) min $((BUDGET % 60)) s; device time lent: 15 min in all):"
    for step in info linear dit_block tests; do
        wants "$step" || continue
        case $step in
            info) cap=$INFO_S ;;
            linear) cap=$LINEAR_S ;;
            dit_block) cap=$DIT_S ;;
            tests) cap=$TESTS_S ;;
        esac
        ((at + cap > BUDGET)) && cap=$((BUDGET - at))
        printf '   %-10s %4ss cap, by %4ss\n' "$step" "$cap" "$((at + cap))"
        at=$((at + cap))
    done
    echo "   total      ${at}s at most (+ tuning print and file copies, seconds)"
}

# Seconds a step may run: its cap, or what is left of the session budget.
limit_for() {
    local left=$((DEADLINE - SECONDS))
    echo $(($1 < left ? $1 : left))
}

# run_step NAME LIMIT COMMAND...: run under timeout (STEP_LOG=file also tees the output there; OK_RC: more exit
# codes that mean success); never fails.
run_step() {
    local name=$1 limit=$2 rc t0=$SECONDS status
    shift 2
    if ((limit < 15)); then
        echo "== $name: skipped, session budget spent"
        SUMMARY+=("$name: skipped (session budget spent)")
        return 0
    fi
    echo
    echo "== $name (limit ${limit}s, $((SECONDS - START))s into the session): $*"
    if [[ -n ${STEP_LOG:-} ]]; then
        timeout -k 10 "$limit" "$@" 2>&1 | tee "$STEP_LOG"
        rc=${PIPESTATUS[0]}
    else
        timeout -k 10 "$limit" "$@"
        rc=$?
    fi
    [[ " ${OK_RC:-} " == *" $rc "* ]] && rc=0
    case $rc in
        0) status=ok ;;
        124 | 137) status="TIMED OUT after ${limit}s" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    echo "== $name: $status in $((SECONDS - t0))s"
    ((rc == 0)) || FAILURES=$((FAILURES + 1))
    SUMMARY+=("$name: $status in $((SECONDS - t0))s")
}

setup_imports() {
    SITE=$(mktemp -d "${TMPDIR:-/tmp}/dit_quant_site.XXXXXX")
    mkdir -p "$SITE/pkg" "$SITE/wheels"
    ln -s "$PWD" "$SITE/pkg/comfyui_dit_quant"
    local wheels=(.whl/*.whl)
    if [[ -e ${wheels[0]} ]]; then
        echo "installing ${wheels[*]} into $SITE/wheels (offline)"
        if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE/wheels" "${wheels[@]}"; then
            echo "pip install failed: unzipping the wheels instead"
            for w in "${wheels[@]}"; do "$PY" -m zipfile -e "$w" "$SITE/wheels"; done
        fi
    else
        echo "no .whl/*.whl: using the installed packages only (dit_block needs diffusers)"
    fi
    export PYTHONPATH="$SITE/pkg:$SITE/wheels${PYTHONPATH:+:$PYTHONPATH}"
}

print_environment() {
    echo "== environment ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), $(nproc) CPUs)"
    if command -v nvidia-smi >/dev/null 2>&1; then
        timeout 30 nvidia-smi
        timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
    else
        echo "nvidia-smi: not found"
    fi
    echo "C compiler (Triton builds its launcher with it): $(command -v cc || command -v gcc || echo none)"
    timeout 120 "$PY" - <<'EOF'
import platform, sys
import torch
print(f"python {platform.python_version()} ({sys.executable})")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"CUDA available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"  cuda:{i} {p.name} sm_{p.major}{p.minor} {p.total_memory / 2**30:.0f} GiB {p.multi_processor_count} SMs")
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
for module, dist in (("triton", "triton"), ("diffusers", "diffusers"), ("transformers", "transformers"),
                     ("safetensors", "safetensors"), ("huggingface_hub", "huggingface-hub"), ("numpy", "numpy"),
                     ("pytest", "pytest"), ("xdist", "pytest-xdist"), ("pytest_timeout", "pytest-timeout")):
    spec = find_spec(module)
    try:
        v = version(dist)
    except PackageNotFoundError:
        v = "?"
    print(f"{module} {v} ({spec.origin})" if spec else f"{module}: not installed")
import comfyui_dit_quant
print(f"comfyui_dit_quant {comfyui_dit_quant.__version__} ({comfyui_dit_quant.__file__})")
EOF
}

# The Triton GEMM configs tuned in this session (and earlier ones on this machine): printed, and the newest cache
# file copied to $OUT/tuning-<gpu>.json (one file: the return folder holds 8 at most).
collect_tuning() {
    local device=$1 gpu=$2 files=()
    echo
    if [[ $device != cuda ]]; then
        echo "== tuning: none on the CPU (Triton GEMMs tune on CUDA only)"
        return 0
    fi
    mapfile -t files < <(ls -t "$COMFYUI_DIT_QUANT_CACHE_DIR"/triton_gemm-*.json 2>/dev/null)
    if ((${#files[@]} == 0)); then
        echo "== tuning: no tuned configs in $COMFYUI_DIT_QUANT_CACHE_DIR (tuning off, or no Triton GEMM ran)"
        SUMMARY+=("tuning: no tuned configs")
        return 0
    fi
    echo "== tuning: ${#files[@]} cache file(s) in $COMFYUI_DIT_QUANT_CACHE_DIR"
    timeout 60 "$PY" -m comfyui_dit_quant.kernels.triton_tuning "${files[@]}"
    cp "${files[0]}" "$OUT/tuning-$gpu.json"
    ((${#files[@]} == 1)) || echo "(copied the newest, ${files[0]##*/}; the others are only printed above)"
    SUMMARY+=("tuning: ${files[0]##*/} -> tuning-$gpu.json")
}

main() {
    echo "gpu_session.sh: quick=$QUICK only=$ONLY budget=${BUDGET}s out=$OUT"
    echo "tuning cache: $COMFYUI_DIT_QUANT_CACHE_DIR (COMFYUI_DIT_QUANT_TUNE=${COMFYUI_DIT_QUANT_TUNE:-1})"
    print_plan
    setup_imports
    print_environment

    local device=cpu gpu=cpu
    if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        device=cuda
        gpu=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null || echo gpu)
        gpu=$(echo "$gpu" | tr '[:upper:]' '[:lower:]' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/^-//;s/-$//')
    fi
    local lin_args dit_args
    if [[ $device == cpu ]]; then
        echo "no CUDA device: tests/gpu skips, the benchmarks run their CPU smoke sizes"
        lin_args=(--device cpu --m 32 --shapes 256x256 --iters 2 --warmup 1)
        dit_args=(--device cpu --dim 128 --ffn 256 --heads 2 --frames 1 --height 4 --width 4 --text 8 --iters 1
                  --warmup 0)
    elif ((QUICK)); then
        lin_args=(--m 256,4096 --shapes 5120x5120 --iters 5 --warmup 2)
        dit_args=(--frames 2 --height 16 --width 16 --iters 3 --warmup 1)
    else
        lin_args=(--m 32760,75600,4096,256)
        dit_args=()
    fi

    if wants info; then
        run_step info "$(limit_for "$INFO_S")" "$PY" bench/device_info.py --device "$device" \
            --json "$OUT/device-$gpu.json"
    fi

    if wants linear; then
        local lim
        lim=$(limit_for "$LINEAR_S")
        run_step linear "$lim" "$PY" bench/linear.py "${lin_args[@]}" --budget $((lim > 90 ? lim - 60 : 30)) \
            --json "$OUT/linear-$gpu.json"
    fi

    if wants dit_block; then
        if "$PY" -c "import diffusers" 2>/dev/null; then
            local lim
            lim=$(limit_for "$DIT_S")
            run_step dit_block "$lim" "$PY" bench/dit_block.py "${dit_args[@]}" --budget $((lim > 60 ? lim - 40 : 20)) \
                --json "$OUT/dit_block-$gpu.json"
        else
            echo "== dit_block: skipped, diffusers is not importable (carry .whl, see the top of this script)"
            SUMMARY+=("dit_block: skipped (no diffusers)")
        fi
    fi

    if wants tests; then
        local pytest_args=(tests/gpu -q -rfEsxXP --maxfail=30 --durations=20 -p no:cacheprovider
                           "--junitxml=$OUT/gpu_tests.xml")
        if [[ $device == cuda ]] && "$PY" -c "import xdist" 2>/dev/null; then
            pytest_args+=(-n "${GPU_TEST_WORKERS:-6}")
        fi
        if "$PY" -c "import pytest_timeout" 2>/dev/null; then
            pytest_args+=(--timeout=180)
        fi
        # shellcheck disable=SC2206 - PYTEST_EXTRA is split on purpose
        pytest_args+=(${PYTEST_EXTRA:-})
        local ok_rc=""
        [[ $device == cpu ]] && ok_rc=5  # pytest: no test collected (every module skipped itself)
        OK_RC=$ok_rc STEP_LOG="$OUT/gpu_tests.log" run_step tests "$(limit_for "$TESTS_S")" \
            env DIT_QUANT_GPU_QUICK=1 "$PY" -m pytest "${pytest_args[@]}"
    fi

    collect_tuning "$device" "$gpu"

    echo
    echo "== summary ($((SECONDS - START))s in all; device $device, gpu $gpu)"
    printf '   %s\n' "${SUMMARY[@]}"
    ls -la "$OUT"
    rm -rf "$SITE"
    ((FAILURES == 0))  # the exit status: 1 when a step failed or timed out
}

main 2>&1 | tee "$OUT/session.log"
exit "${PIPESTATUS[0]}"
