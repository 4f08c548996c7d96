#!/usr/bin/env bash
# The committed GPU runs, sized for the workplace's `device` tool (one command <= 10 min, 30 device-minutes
# per session, a bare machine each time, files back only through $OUT: <= 8 files of <= 16 MiB).
#
#   here, once:   bash scripts/gpu_runs.sh prepare
#                 -> .gpu/ (in .gitignore): Fashion-MNIST's four IDX .gz files and the wheels the machine lacks
#                    (captum, quantus, cachetools; torch, numpy, scipy, matplotlib, tqdm, scikit-image,
#                    opencv-headless are already there). About 31 MiB, under the 64 MiB carry limit.
#   there:        device run, carry [".gpu"], command: bash scripts/gpu_runs.sh JOB
#                 JOB: bench | split | loo | smoothing  (one per call: each is sized to end inside 10 min)
#   back here:    the call's files land in files_at: JOB.tar.gz (the results folder without checkpoints)
#                 and JOB.log; unpack with `tar -xzf JOB.tar.gz -C results/` and commit.
#
# Sizes. bench, split (--preset paper) and loo (--preset paper) are the issues' full runs. The smoothing
# study's paper protocol (7 regimes x 50 epochs x 60k images of PGD-40 at batch 32: about 9e9 sequential
# LeNet forward-backward passes in 7e5 optimizer steps) needs hours on one GPU, more than a session's
# device time; this script trains 3 epochs (SMOOTHING_EPOCHS), and the results say so in their config.
#
# GPU_RUNS_TINY=1 runs every job at a smoke size on the CPU (the plumbing check used here, with no GPU);
# GPU_RUNS_DRY=1 prints the job's module and arguments, one per line, and runs nothing (tests parse them).
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-}
PY=${PYTHON:-python3}

if [ "$job" = prepare ]; then
    mkdir -p .gpu/data .gpu/whl
    src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    cp "$src"/*-ubyte.gz .gpu/data/
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl captum==0.9.0 quantus==0.6.0 cachetools==8.0.1
    du -sh .gpu
    exit 0
fi

case "$job" in bench|split|loo|smoothing) ;; *)
    echo "usage: bash scripts/gpu_runs.sh prepare|bench|split|loo|smoothing (see the header)" >&2; exit 2;;
esac

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

if [ -n "${GPU_RUNS_TINY:-}" ]; then
    dev=cpu
    split_args=(--sigma 0.1 --pairs 1 --n 300 --test-images 4 --draws 2 --ig-steps 2 --epochs 0.2)
    loo_args=(--n 16 32 --steps 16 32 --replicas 2 --sigma 0.1 --test-images 4 --draws 2 --ig-steps 2)
    smooth_args=(--small --regimes N A --epochs 0.1 --train-images 200 --eval-images 8)
    bench_args=(--tiny)
else
    dev=cuda
    split_args=(--preset paper)
    loo_args=(--preset paper)
    smooth_args=(--epochs "${SMOOTHING_EPOCHS:-3}")
    bench_args=()
fi
run=runs/gpu-$job
if [ -n "${GPU_RUNS_DRY:-}" ]; then  # print the job's command line (one argument per line) and stop
    case "$job" in
        bench) printf '%s\n' benchmarks --device "$dev" "${bench_args[@]}" --out "$run/benchmarks.json" ;;
        split) printf '%s\n' empirical.split_stability --device "$dev" --data-root "$data" --out "$run" --no-progress "${split_args[@]}" ;;
        loo) printf '%s\n' empirical.loo_stability --device "$dev" --data-root "$data" --out "$run" --no-progress "${loo_args[@]}" ;;
        smoothing) printf '%s\n' empirical.smoothing_study --device "$dev" --data-root "$data" --out "$run" --no-progress "${smooth_args[@]}" ;;
    esac
    exit 0
fi
rm -rf "$run"
mkdir -p "$out"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
status=0
case "$job" in
    bench) "$PY" -m benchmarks --device "$dev" "${bench_args[@]}" --out "$run/benchmarks.json" ;;
    split) "$PY" -m empirical.split_stability --device "$dev" --data-root "$data" --out "$run" --no-progress "${split_args[@]}" ;;
    loo) "$PY" -m empirical.loo_stability --device "$dev" --data-root "$data" --out "$run" --no-progress "${loo_args[@]}" ;;
    smoothing) "$PY" -m empirical.smoothing_study --device "$dev" --data-root "$data" --out "$run" --no-progress "${smooth_args[@]}" ;;
esac 2>&1 | tee "$out/$job.log" || status=$?
# results without checkpoints (each LeNet checkpoint is 13 MB; they are rebuilt from the seeds)
tar -czf "$out/$job.tar.gz" --exclude=checkpoints -C runs "gpu-$job"
ls -la "$out"
exit "$status"
