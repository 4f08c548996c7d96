#!/usr/bin/env bash
# The GPU runs, sized for the workplace's `device` tool: 15 device-minutes per session (start-up and idle counted),
# one command <= 10 min, a bare machine each time, files back only through $OUT (<= 8 files of <= 16 MiB, 64 MiB
# in all), <= 64 MiB travelling with a call (tree + carried paths). docs/gpu_runs.md has the order and the calls.
#
#   here, once:   bash scripts/gpu_runs.sh prepare
#                 -> .gpu/ (in .gitignore): Fashion-MNIST's four IDX .gz files (.gpu/data, 29 MiB) and the wheels
#                    only `bench` needs (.gpu/whl: captum, quantus, cachetools, kornia, kornia_rs; ~8.5 MiB)
#   a slice:      device run, timeout_s 600, carry [".gpu"] (bench) or [".gpu/data", ".slices/JOB"], command:
#                 SALIENCY_STABILITY_COMMIT=<git rev-parse HEAD, here> bash scripts/gpu_runs.sh slice JOB
#                 smoke (1 min), unpack the carried state, work to SLICE_BUDGET (540 s), pack the state and the
#                 results into $OUT (empirical/runtime/slices.py); exit 0 complete, 75 run the next slice
#   between:      python3 empirical/runtime/slices.py stash <files_at> --job JOB   (-> .slices/JOB/, carried next)
#   when done:    tar -xzf <files_at>/JOB.results.tar.gz -C runs/ && python -m empirical.report.import_run ...
#
# Sizes. bench is the issue's full run (330 s on an H100). split is the paper sweep with 16 Gauss-Legendre IG
# nodes (SPLIT_ARGS="--ig-steps 50" for the paper's 50: 2-4 slices); loo is the paper grid with 100 test images,
# 32 draws and 16 IG nodes; smoothing trains the medium preset (20k images, FGSM with random start) for 3 epochs
# (SMOOTHING_EPOCHS). smoothing-paper is the paper protocol (`--preset paper`: 7 regimes, 50 epochs of 60k images,
# PGD-40, batch 32) trained in lockstep with CUDA-graphed steps: its training state (262 MiB) cannot travel
# between slices, so a slice must finish it: PAPER_ARGS="--train-tf32 --epochs E" with E from the bench slice
# (python -m empirical.runtime.slice_plan). Each results folder's config records the sizes it ran at.
#
# Several jobs per call: `bash scripts/gpu_runs.sh split loo` runs them in turn; GPU_RUNS_PARALLEL=1 side by
# side on the one GPU (wall times then overlap). `smoke` runs every job at tiny sizes on the GPU and the
# tests that need one. JOB_TIMEOUT (s, default 590) stops a job that would outrun the call; SPLIT_ARGS,
# LOO_ARGS, SMOOTH_ARGS, BENCH_ARGS, PAPER_ARGS add flags (later flags override the preset).
#
# GPU_RUNS_TINY=1 runs every job at a smoke size on the CPU (the plumbing check used here, with no GPU);
# GPU_RUNS_DRY=1 prints the job's module and arguments, one per line, and runs nothing (tests parse them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = prepare ]; then
    mkdir -p .gpu/data .gpu/whl
    src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    cp "$src"/*-ubyte.gz .gpu/data/
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl captum==0.9.0 quantus==0.6.0 cachetools==8.0.1 kornia==0.9.0
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d .gpu/whl kornia_rs==0.2.0
    du -sh .gpu
    exit 0
fi

slice_mode=
if [ "${1:-}" = slice ]; then  # one slice of one job (docs/gpu_runs.md): smoke, unpack, work to a deadline, pack
    slice_mode=1; shift
    [ $# -eq 1 ] && [ "$1" != smoke ] || { echo "usage: bash scripts/gpu_runs.sh slice JOB (one job, not smoke)" >&2; exit 2; }
fi
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(usage)
for j in "${jobs[@]}"; do
    case "$j" in bench|split|loo|smoothing|smoothing-paper|smoke) ;; *)
        echo "usage: bash scripts/gpu_runs.sh prepare | [slice] JOB... with JOB in smoke bench split loo smoothing smoothing-paper (see the header)" >&2
        exit 2;;
    esac
done

if [ -d .gpu/whl ] && [ -n "$(ls .gpu/whl 2>/dev/null)" ] && [ -z "${GPU_RUNS_TINY:-}${GPU_RUNS_DRY:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
out=${OUT:-runs/gpu-out}
data=.gpu/data
[ -d "$data" ] || data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

tiny_split=(--sigma 0.1 --pairs 1 --n 300 --test-images 4 --draws 2 --ig-steps 2 --epochs 0.2)
tiny_loo=(--n 16 32 --steps 16 32 --replicas 2 --sigma 0.1 --test-images 4 --draws 2 --ig-steps 2)
tiny_smooth=(--small --regimes N A M1 M2 G E NG --epochs 0.1 --train-images 200 --eval-images 8 --train-tf32)  # every block captured, under TF32
if [ -n "${GPU_RUNS_TINY:-}" ]; then
    dev=${GPU_RUNS_DEVICE:-cpu}
    split_args=("${tiny_split[@]}"); loo_args=("${tiny_loo[@]}"); smooth_args=("${tiny_smooth[@]}"); bench_args=(--tiny)
    paper_args=("${tiny_smooth[@]}")
else
    dev=${GPU_RUNS_DEVICE:-cuda}
    # the sizes of the committed runs (results/*-gpu): side by side in one 10-minute call, split and loo took
    # 535 s and 522 s; the smoothing study, alone, 104 s
    split_args=(--preset paper --ig-steps 16)
    loo_args=(--preset paper --test-images 100 --draws 32 --ig-steps 16)
    smooth_args=(--preset medium --epochs "${SMOOTHING_EPOCHS:-3}" --robust-images 512 --robust-steps 100)
    bench_args=()
    paper_args=(--preset paper)
fi
# extra flags per job (flags given later override the preset): SPLIT_ARGS, LOO_ARGS, SMOOTH_ARGS, BENCH_ARGS
read -r -a extra_split <<< "${SPLIT_ARGS:-}"; read -r -a extra_loo <<< "${LOO_ARGS:-}"
read -r -a extra_smooth <<< "${SMOOTH_ARGS:-}"; read -r -a extra_bench <<< "${BENCH_ARGS:-}"
read -r -a extra_paper <<< "${PAPER_ARGS:-}"; paper_args+=("${extra_paper[@]}")
split_args+=("${extra_split[@]}"); loo_args+=("${extra_loo[@]}"); smooth_args+=("${extra_smooth[@]}")
bench_args+=("${extra_bench[@]}")

# argv of one job, one argument per line, into the array `cmd`
job_cmd() {
    local run=$2
    case "$1" in
        bench) cmd=(benchmarks --device "$dev" "${bench_args[@]}" --out "$run/benchmarks.json") ;;
        split) cmd=(empirical.split_stability --device "$dev" --data-root "$data" --out "$run" --no-progress "${split_args[@]}") ;;
        loo) cmd=(empirical.loo_stability --device "$dev" --data-root "$data" --out "$run" --no-progress "${loo_args[@]}") ;;
        smoothing) cmd=(empirical.smoothing_study --device "$dev" --data-root "$data" --out "$run" --no-progress "${smooth_args[@]}") ;;
        smoothing-paper) cmd=(empirical.smoothing_study --device "$dev" --data-root "$data" --out "$run" "${paper_args[@]}") ;;
    esac
}

runs=${GPU_RUNS_DIR:-runs}
if [ -n "${GPU_RUNS_DRY:-}" ]; then  # print each job's command line (one argument per line) and stop
    for j in "${jobs[@]}"; do [ "$j" = smoke ] && continue; job_cmd "$j" "runs/gpu-$j"; printf '%s\n' "${cmd[@]}"; done
    exit 0
fi

# the tests that only run with a GPU (the rest run here, on the CPU)
gpu_tests=(tests/test_quality_metrics.py::test_cuda_matches_cpu tests/test_saliency.py::test_cuda_results_stay_on_device_and_match_cpu
    tests/test_smoothing.py::test_block_runs_on_cuda_and_matches_cpu tests/test_attacks.py::test_attack_stays_on_cuda
    tests/test_benchmarks.py::test_memory_section_on_cuda_has_no_oom tests/test_lockstep.py::test_cuda_graphs_match_eager_steps
    "tests/test_benchmarks.py::test_batch_invariant_explain_gives_each_image_the_same_bits_in_any_batch")

# one slice of one job (SLICE_BUDGET s in all, default 540 = 9 min; the device call's timeout_s leaves ~1 min):
# (1) the device check and the job at tiny size (bench: the GPU-only tests instead, reported, not fatal), at most
# SLICE_SMOKE s (default 60; 0: no smoke, for tests);
# (2) the state a previous slice returned (GPU_SLICES_CARRY/JOB/, default .slices/JOB/) unpacked into the run folder;
# (3) the job
# until SLICE_PACK_MARGIN s (default 45) before the budget ends: the smoothing study stops itself there
# (--time-limit: a training at a step boundary, its state saved; evaluation between units), the others are
# stopped by timeout (finished units are atomic files; a training loses at most its epoch); (4) the state and
# the results packed into $OUT (empirical/runtime/slices.py). Exit 0: the job is complete; 75: stopped at its
# deadline, run the next slice; anything else: failed (what it finished still comes back).
run_slice() {
    local j=$1 run="$runs/gpu-$1" t0 st=0 left lim=() log="$out/$1.log"
    t0=$(date +%s)
    mkdir -p "$out" "$runs"
    (
        if [ "${SLICE_SMOKE:-60}" -gt 0 ]; then
            "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || exit 3
            # tiny sizes (two smoothing models: lockstep and its CUDA graphs are still exercised)
            local split_args=("${tiny_split[@]}") loo_args=("${tiny_loo[@]}") bench_args=(--tiny) \
                smooth_args=("${tiny_smooth[@]}" --regimes N A --methods vg ig) paper_args=("${tiny_smooth[@]}" --regimes N A --methods vg ig)
            local sst=0
            if [ "$j" = bench ]; then  # bench's smoke: the GPU-only tests (a failure is reported; bench still runs)
                timeout "${SLICE_SMOKE:-60}" "$PY" -m pytest -q -rfs --tb=line -p no:cacheprovider "${gpu_tests[@]}" \
                    > "$runs/smoke-$j.log" 2>&1 || sst=$?
                tail -n 12 "$runs/smoke-$j.log"
                [ "$sst" = 124 ] || sst=0
            else
                job_cmd "$j" "$runs/smoke-$j"; rm -rf "$runs/smoke-$j"
                timeout "${SLICE_SMOKE:-60}" "$PY" -m "${cmd[@]}" > "$runs/smoke-$j.log" 2>&1 || sst=$?
            fi
            if [ "$sst" = 124 ]; then  # slow, not broken: the slice goes on (its own deadline still holds)
                echo "[slice] smoke of $j still running after ${SLICE_SMOKE:-60} s: stopped, going on"
            elif [ "$sst" != 0 ]; then
                tail -n 20 "$runs/smoke-$j.log"; echo "[slice] smoke of $j failed: nothing run, the carried state is unchanged"; exit 3
            else
                echo "[slice] smoke of $j passed after $(( $(date +%s) - t0 )) s"
            fi
        fi
    ) > "$log" 2>&1 || { cat "$log"; return 3; }
    "$PY" empirical/runtime/slices.py unpack --carry "${GPU_SLICES_CARRY:-.slices}" --run "$run" --job "$j" >> "$log" 2>&1 || { cat "$log"; return 4; }
    mkdir -p "$run"  # packed even if the job writes nothing
    left=$(( ${SLICE_BUDGET:-540} - ${SLICE_PACK_MARGIN:-45} - ( $(date +%s) - t0 ) ))
    if [ "$left" -ge 10 ]; then
        job_cmd "$j" "$run"
        case "$j" in smoothing*) lim=(--time-limit "${SLICE_TIME_LIMIT:-$left}");; esac  # override: tests
        timeout "$(( left + 15 ))" "$PY" -m "${cmd[@]}" "${lim[@]}" >> "$log" 2>&1 || st=$?
    else
        st=75; echo "[slice] no time left for $j after the smoke and the unpacking" >> "$log"
    fi
    [ "$st" = 124 ] && st=75  # stopped by the backstop: finished units and the last snapshot are kept
    "$PY" empirical/runtime/slices.py pack --run "$run" --out "$out" --job "$j" --exit-code "$st" \
        ${GPU_SLICES_CARRY_BUDGET:+--carry-budget "$GPU_SLICES_CARRY_BUDGET"} >> "$log" 2>&1 || st=5
    echo "[slice] $j exit $st after $(( $(date +%s) - t0 )) s" >> "$log"
    tail -n 30 "$log"
    return "$st"
}
if [ -n "$slice_mode" ]; then
    st=0; run_slice "${jobs[0]}" || st=$?
    ls -la "$out"
    exit "$st"
fi

mkdir -p "$out" runs
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

# one job: its log and its results folder (without checkpoints: each LeNet's is 13 MB, rebuilt from the seeds)
# come back through $OUT; JOB_TIMEOUT (s) stops a job that would outrun the call, keeping what it wrote
run_job() {
    local j=$1 run=runs/gpu-$1 st=0
    [ "$j" = smoothing-paper ] || rm -rf "$run"  # the paper study resumes across calls from its checkpoints
    job_cmd "$j" "$run"
    timeout "${JOB_TIMEOUT:-590}" "$PY" -m "${cmd[@]}" > "$out/$j.log" 2>&1 || st=$?
    tar -czf "$out/$j.tar.gz" --exclude=checkpoints -C runs "gpu-$j" 2>/dev/null || true
    echo "[$j] exit $st after $SECONDS s" | tee -a "$out/$j.log"
    return "$st"
}

# smoke: every job at the tiny sizes on this device, at once, and the tests that only run with a GPU
smoke() {
    local st=0
    # tiny sizes for these jobs only: locals shadow the globals in job_cmd (bash scopes dynamically), so jobs
    # after `smoke` in the same call keep their own sizes
    local split_args=("${tiny_split[@]}") loo_args=("${tiny_loo[@]}") smooth_args=("${tiny_smooth[@]}")
    mkdir -p runs
    {
        for j in split loo smoothing; do
            job_cmd "$j" "runs/smoke-$j"; rm -rf "runs/smoke-$j"
            timeout 300 "$PY" -m "${cmd[@]}" > "runs/smoke-$j.log" 2>&1 &
        done
        wait
        for j in split loo smoothing; do echo "== $j"; tail -n 15 "runs/smoke-$j.log"; done
        "$PY" -m benchmarks --device "$dev" --tiny --out runs/smoke-bench.json 2>&1 | tail -n 12
        "$PY" -m pytest -q -rfs --tb=line -p no:cacheprovider tests/test_cli.py "${gpu_tests[@]}" 2>&1 | tail -n 25
    } > "$out/smoke.log" 2>&1 || st=$?
    grep -h "Error\|error:\|passed\|failed\|exit" "$out/smoke.log" | tail -n 20
    return "$st"
}

status=0
if [ -n "${GPU_RUNS_PARALLEL:-}" ]; then  # the jobs side by side on the one GPU (their wall times then overlap)
    pids=()
    for j in "${jobs[@]}"; do run_job "$j" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || status=$?; done
else
    for j in "${jobs[@]}"; do
        if [ "$j" = smoke ]; then smoke || status=$?; else run_job "$j" || status=$?; fi
    done
fi
for j in "${jobs[@]}"; do [ -f "$out/$j.log" ] && { echo "== $j"; tail -n 25 "$out/$j.log"; }; done
ls -la "$out"
exit "$status"
