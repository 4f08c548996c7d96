"""scripts/gpu_runs.sh (the committed GPU runs, for a session lent a GPU) stays in step with the CLIs.

No GPU here: the script's dry mode prints each job's arguments, and each CLI's own parser must accept
them; the CPU smoke sizes must also pass the configs' validation, so a flag renamed in a CLI fails here
rather than in a session's scarce device minutes.
"""
import importlib
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"empirical.split_stability": "split", "empirical.loo_stability": "loo",
           "empirical.smoothing_study": "smoothing", "benchmarks": "bench"}


def dry(job: str, tiny: bool) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", "GPU_RUNS_DRY": "1", **({"GPU_RUNS_TINY": "1"} if tiny else {})}
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_runs.sh"), job], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return res.stdout.splitlines()


@pytest.mark.parametrize("tiny", [False, True])
@pytest.mark.parametrize("job", ["split", "loo", "smoothing", "smoothing-paper", "bench"])
def test_runbook_arguments_parse(job, tiny):
    module, *args = dry(job, tiny)
    assert MODULES[module] == job.split("-")[0]
    assert ("cpu" if tiny else "cuda") == args[args.index("--device") + 1]
    mod = importlib.import_module("benchmarks.__main__" if module == "benchmarks" else module)
    ns = mod.parser().parse_args(args)
    if tiny and hasattr(mod, "config_from_args"):
        cfg = mod.config_from_args(ns)
        cfg = cfg[0] if isinstance(cfg, tuple) else cfg
        cfg.validate()


def test_runbook_rejects_unknown_jobs():
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_runs.sh"), "train"], capture_output=True, text=True)
    assert res.returncode == 2 and "usage" in res.stderr
