#!/usr/bin/env bash
# `make test-portable`: the numerics-sensitive tests (marker `numerics`, see tests/conftest.py) under every CPU
# kernel setting a CI machine may pick, so a tolerance tuned on one machine's kernels cannot pass here and fail
# there. PyTorch picks kernels by instruction set (ATEN_CPU_CAPABILITY) and thread count; MKL's GEMM by CPU
# vendor and instruction set (MKL_ENABLE_INSTRUCTIONS, MKL_CBWR). Usage: scripts/test_portable.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# unset = the best the CPU has: the same as avx2 on an AVX2-only CPU, as avx512 on an AVX-512 one
caps=(default avx2)
grep -qw avx512f /proc/cpuinfo 2>/dev/null && caps+=(avx512)
settings=()
for cap in "${caps[@]}"; do for t in 1 2; do settings+=("cap=$cap threads=$t"); done; done
settings+=("cap=unset threads=2 MKL_CBWR=COMPATIBLE" "cap=unset threads=2 MKL_ENABLE_INSTRUCTIONS=AVX2")
failed=()
for s in "${settings[@]}"; do
    env_args=()
    for kv in $s; do
        case $kv in
            cap=unset) ;;
            cap=*) env_args+=("ATEN_CPU_CAPABILITY=${kv#cap=}") ;;
            threads=*) env_args+=("OMP_NUM_THREADS=${kv#threads=}" "MKL_NUM_THREADS=${kv#threads=}") ;;
            *) env_args+=("$kv") ;;
        esac
    done
    echo "== $s"
    if ! env "${env_args[@]}" "$PY" -m pytest -q -p no:cacheprovider -m numerics tests "$@"; then failed+=("$s"); fi
done
if ((${#failed[@]})); then printf 'test-portable: FAILED under: %s\n' "${failed[@]}"; exit 1; fi
echo "test-portable: numerics tests pass under all ${#settings[@]} kernel settings"
