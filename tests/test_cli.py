"""The shared CLI plumbing: device names and number flags fail with one line naming the value."""
import argparse

import pytest
import torch

from empirical import cli
from empirical.errors import UserError


def test_device_names():
    assert cli.resolve_device("cpu") == "cpu"
    assert cli.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x", "cuda:", "gpu", "CPU"):
        with pytest.raises(UserError, match="valid values are auto, cpu, cuda, cuda:N"):
            cli.resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_clear_error():
    for name in ("cuda", "cuda:0"):
        with pytest.raises(UserError, match="no CUDA GPU is available here"):
            cli.resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_beyond_the_machine():
    with pytest.raises(UserError, match="valid: cuda:0"):
        cli.resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("parse,good,bad", [
    (cli.sigma_value, {"0": 0.0, "0.15": 0.15, "1": 1.0}, ["-0.1", "nan", "inf", "x", "38", "1.01"]),
    (cli.positive_int, {"1": 1, "12": 12}, ["0", "-3", "1.5", "two"]),
    (cli.positive_float, {"0.5": 0.5, "3": 3.0}, ["0", "-1", "nan"]),
])
def test_number_flags(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace(".", r"\.")):
            parse(text)


def test_fp32_precision_is_recorded_and_can_be_set_to_ieee():
    from empirical.runtime.precision import fp32_mode, fp32_precision, set_fp32_ieee
    before = fp32_precision()
    assert before["api"] in ("fp32_precision", "allow_tf32") and "cudnn_conv" in before
    with fp32_mode("tf32"):  # the block's setting, then the previous one exactly
        assert fp32_precision()["cudnn_conv"] == "tf32" and fp32_precision()["cuda_matmul"] == "tf32"
        with fp32_mode("ieee"):
            assert fp32_precision()["cudnn_conv"] == "ieee"
        assert fp32_precision()["cudnn_conv"] == "tf32"
    assert fp32_precision() == before
    with pytest.raises(ValueError, match="'fast'"):
        with fp32_mode("fast"):
            pass
    assert fp32_precision() == before
    with fp32_mode(before["cudnn_conv"] if before["cudnn_conv"] in ("ieee", "tf32") else "tf32"):
        set_fp32_ieee()
        after = fp32_precision()
        assert after["cudnn_conv"] == "ieee" and after["cuda_matmul"] == "ieee"
    assert fp32_precision() == before  # left as it was for the other tests


def test_commit_can_be_passed_in_for_a_copied_tree(monkeypatch):
    from empirical.runtime.environment import COMMIT_ENV, provenance
    monkeypatch.setenv(COMMIT_ENV, "0123abcd")
    p = provenance("cpu")
    assert p["git_commit"] == "0123abcd" and p["git_commit_from"] == "environment"
    monkeypatch.delenv(COMMIT_ENV)
    assert provenance("cpu")["git_commit_from"] == "repository"


def test_commit_is_the_one_the_process_started_from(monkeypatch):
    """A long run records the commit it loaded its code from: git is read once, when empirical.runtime.environment is
    first imported, not when the results are written (a commit made meanwhile does not count)."""
    import subprocess

    from empirical.runtime import environment as results
    monkeypatch.delenv(results.COMMIT_ENV, raising=False)

    def no_git(*a, **kw):
        raise AssertionError("git read again after start")
    monkeypatch.setattr(subprocess, "run", no_git)
    monkeypatch.setattr(results, "_COMMIT_AT_START", "feedc0de")
    assert results.provenance("cpu")["git_commit"] == "feedc0de"


@pytest.mark.parametrize("module,run_name,argv", [
    ("empirical.experiments.split.cli", "run", ["--preset", "paper", "--device", "cpu"]),
    ("empirical.experiments.loo.cli", "run", ["--preset", "paper", "--device", "cpu"]),
    ("empirical.experiments.smoothing.cli", "run", ["--device", "cpu"]),  # its default preset is the paper's
])
def test_gpu_sized_preset_on_the_cpu_says_so_and_still_runs(module, run_name, argv, monkeypatch, capsys, tmp_path):
    import importlib
    mod = importlib.import_module(module)

    class Stop(Exception):
        pass

    def fake_run(*a, **k):
        raise Stop  # the real run would take hours; what matters is what was said before it
    monkeypatch.setattr(mod, run_name, fake_run)
    from tests.fakedata import fake_fashion_mnist
    root = fake_fashion_mnist(tmp_path / "data", n_train=64, n_test=16)  # no dependence on the real files
    with pytest.raises(Stop):
        mod.main(argv + ["--data-root", str(root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "note: --preset paper is sized for a GPU" in err and len(err.strip().splitlines()) == 1


def test_footnotes_number_each_lacking_assumption_once():
    from empirical import cli
    notes = cli.Footnotes()
    rows = [{"certified": False, "lacks": "a; b"}, {"certified": False, "lacks": "b; c"}, {"certified": True, "lacks": ""}]
    assert [cli.lacks(r, notes) for r in rows] == ["lacks [1,2]", "lacks [2,3]", "certified"]
    assert notes.lines("why:") == ["why:", "  [1] a", "  [2] b", "  [3] c"]
