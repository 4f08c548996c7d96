"""Section 4: training throughput (images per second) and the end-to-end wall time of a split-stability run.

- One model: ``empirical.training.trainer.train`` (plain SGD, ``sgd_ct``) of LeNet on synthetic Fashion-MNIST-shaped
  uint8 data, natural and PGD-L∞ (``pgd_linf``, ε = 0.1, step 0.025, ``pgd_steps`` steps, no best-iterate
  bookkeeping) training. The timed call follows an untimed warm-up call of a few steps.
- Several models at once: ``n_models`` LeNets stacked with ``torch.func.stack_module_state`` and trained by
  ``vmap`` of ``torch.func.grad`` (each model its own batches, the same plain SGD update); PGD the same way,
  from the attack's building blocks (``random_perturb``, ``step``, ``project``) around a vmapped input gradient.
  Images/s counts every model's images. Check: one vmapped gradient equals each model's own autograd gradient.
- The smoothing study's protocol (Bhusal et al. appendix A: LeNet, Adam 1e-3, batch 32, PGD-40 with step ε/10,
  ε = 0.1): the seven regimes N, A, M1, M2, G, E, NG trained together by ``empirical.training.lockstep.train_lockstep``
  (CUDA-graphed steps on a GPU, eager on the CPU), against one adversarial model trained alone by
  ``empirical.training.trainer.train``; both projected to the paper's 50 epochs of 60,000 images (93,750 steps per
  model). On CUDA, check: the graphed steps equal eager lockstep steps (same capturable Adam) within 1e-4.
- End to end: ``empirical.experiments.split.run.run`` on generated Fashion-MNIST-shaped IDX files
  (tests/fakedata.py), figures included: at the full preset the default sweep's sizes (the demo preset: 2
  pairs of 10,000-image splits, 2 epochs, 100 test images, 16 draws, 8 IG nodes), smaller at --quick, skipped
  where the preset gives no ``e2e`` sizes (tiny).
"""
from __future__ import annotations

import contextlib
import copy
import io
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from benchmarks.common import BenchConfig, build_model, compare, sync, with_floor
from empirical.attacks.pgd import pgd_linf, project, random_perturb, step
from empirical.data import FASHION_MNIST
from empirical.runtime.precision import fp32_mode
from empirical.training.trainer import TrainConfig, train

EPS, ALPHA, LR = 0.1, 0.025, 0.05  # PGD radius and step (pixel units); SGD step size


def _data(n: int, device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8).to(device),
            torch.randint(0, 10, (n,), generator=g).to(device))


def _pgd(steps: int):
    return lambda m, xb, yb: pgd_linf(m, FASHION_MNIST.normalize, xb, yb, EPS, ALPHA, steps, use_best=False)


def _train_one(cfg: BenchConfig, device, steps: int, perturb) -> dict:
    """Images/s of ``train`` over ``steps`` SGD steps (after a 2-step warm-up run)."""
    x, y = _data(cfg.train_batch * steps, device)
    model = build_model("lenet-28", device).requires_grad_(True)
    tc = TrainConfig(optimizer="sgd_ct", epochs=1.0, batch_size=cfg.train_batch, lr=LR)
    train(model, x[:2 * cfg.train_batch], y[:2 * cfg.train_batch], FASHION_MNIST.normalize, tc, device, perturb,
          progress=False)
    sync(device)
    rec = train(model, x, y, FASHION_MNIST.normalize, tc, device, perturb, progress=False)
    sync(device)
    return {"models": 1, "steps": rec["T"], "batch": cfg.train_batch, "seconds": rec["train_seconds"],
            "images_per_s": rec["T"] * cfg.train_batch / rec["train_seconds"]}


class _Stacked:
    """K LeNets as stacked parameters; vmapped loss gradient, input gradient and plain SGD step."""

    def __init__(self, k: int, device):
        nets = [build_model("lenet-28", device, seed=i).requires_grad_(True) for i in range(k)]
        self.nets = nets
        params, buffers = stack_module_state(nets)
        self.params = {n: p.detach() for n, p in params.items()}
        self.buffers = buffers
        base = copy.deepcopy(nets[0]).to("meta")

        def loss(p, b, x01, y, reduction="mean"):
            return F.cross_entropy(functional_call(base, (p, b), (FASHION_MNIST.normalize(x01),)), y, reduction=reduction)

        self.param_grad = vmap(grad(loss))
        self.input_grad = vmap(grad(lambda x01, p, b, y: loss(p, b, x01, y, "sum")))

    def attack(self, x01: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
        x_adv = random_perturb(x01, EPS)
        for _ in range(steps):
            g = self.input_grad(x_adv, self.params, self.buffers, y)
            x_adv = project(step(x_adv, g, ALPHA), x01, EPS)
        return x_adv

    def sgd_step(self, x01: torch.Tensor, y: torch.Tensor) -> None:
        g = self.param_grad(self.params, self.buffers, x01, y)
        self.params = {n: p - LR * g[n] for n, p in self.params.items()}


def _train_stacked(cfg: BenchConfig, device, steps: int, pgd_steps: int | None) -> dict:
    k, b = cfg.n_models, cfg.train_batch
    x, y = _data(k * b * (steps + 1), device, seed=1)
    x, y = x.view(steps + 1, k, b, 1, 28, 28), y.view(steps + 1, k, b)
    st = _Stacked(k, device)

    def run(lo, hi):
        for s in range(lo, hi):
            xb = x[s].float().div(255.0)
            if pgd_steps:
                xb = st.attack(xb, y[s], pgd_steps)
            st.sgd_step(xb, y[s])

    run(0, 1)  # warm-up step
    sync(device)
    t0 = time.perf_counter()
    run(1, steps + 1)
    sync(device)
    sec = time.perf_counter() - t0
    return {"models": k, "steps": steps, "batch": b, "seconds": sec, "images_per_s": k * steps * b / sec}


def _vmap_check(device) -> dict:
    """One vmapped loss gradient against each model's own autograd gradient, same batch per model."""
    st = _Stacked(2, device)
    x, y = _data(16, device, seed=2)
    x01 = x.float().div(255.0).view(2, 8, 1, 28, 28)
    y = y.view(2, 8)
    g = st.param_grad(st.params, st.buffers, x01, y)
    worst = None
    for i, net in enumerate(st.nets):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(FASHION_MNIST.normalize(x01[i])), y[i]).backward()
        for name, p in net.named_parameters():
            c = compare(g[name][i], p.grad, 1e-5)
            if worst is None or c["max_abs_diff"] > worst["max_abs_diff"]:
                worst = c
    worst["what"] = "vmap(grad(loss)) of stacked models == each model's own loss.backward(), every parameter"
    if not worst["passed"]:  # each model's own gradient from two half batches: its float floor on this device
        floor = 0.0
        for i, net in enumerate(st.nets):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(FASHION_MNIST.normalize(x01[i])), y[i]).backward()
            full = {k: v.grad.clone() for k, v in net.named_parameters()}
            net.zero_grad(set_to_none=True)
            for h in (slice(0, 4), slice(4, 8)):
                (0.5 * F.cross_entropy(net(FASHION_MNIST.normalize(x01[i][h])), y[i][h])).backward()
            floor = max(floor, max((p.grad - full[k]).abs().max().item() for k, p in net.named_parameters()))
        worst = with_floor(worst, worst["max_abs_diff"], floor, "max|each model's gradient on 8 images - the mean "
                           "of its gradients on 2 x 4|")
    return worst


def _end_to_end(cfg: BenchConfig, device) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ lives beside benchmarks/
    from empirical.experiments.split.config import SplitStabilityConfig
    from empirical.experiments.split.run import run
    from tests.fakedata import fake_fashion_mnist

    e = dict(cfg.e2e)
    epochs = e.pop("epochs")
    with tempfile.TemporaryDirectory() as tmp:
        root = fake_fashion_mnist(Path(tmp) / "data", n_train=max(400, 2 * e["pairs"] * e["n"]),
                                  n_test=max(100, e["test_images"]))
        sc = SplitStabilityConfig(data_root=str(root), sigmas=(0.15,), methods=("vg", "ig"), device=str(device),
                                  train=replace(TrainConfig(), epochs=epochs), **e)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own table
            res = run(sc, Path(tmp) / "out", progress=False)
        sync(device)
        sec = time.perf_counter() - t0
    train_s = sum(r["train_seconds"] for r in res["networks"])
    maps_s = sum(u["seconds"] for u in res["units"])
    return {"seconds": sec, "config": {**cfg.e2e, "sigmas": [0.15], "methods": ["vg", "ig"]},
            "networks": 2 * sc.pairs, "training_seconds": train_s, "saliency_and_metrics_seconds": maps_s,
            "other_seconds": sec - train_s - maps_s,
            "other": "data loading, accuracy, the bounds' network constants (layer norms, empirical smoothness), figures"}


PAPER_STEPS = 50 * 60000 // 32  # the smoothing paper's FMNIST training: 50 epochs of 60,000 images, batch 32


def _step_flops(nets, specs, batch: int, device) -> int:
    """Floating-point operations of one lockstep step, counted by torch's FlopCounterMode (convolutions and
    matrix products, forward and backward; elementwise work is not counted): per model, its attack's
    iterations (forward + backward to the input) and one update (forward + backward to the weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    for net, spec in zip(nets, specs):
        x = torch.rand(batch, 1, 28, 28, device=device)
        net.requires_grad_(False)
        with FlopCounterMode(display=False) as fc:
            net(x.requires_grad_(True)).sum().backward()
        attack = fc.get_total_flops()
        net.requires_grad_(True)
        with FlopCounterMode(display=False) as fc:
            net(x.detach()).sum().backward()
        net.zero_grad(set_to_none=True)
        total += fc.get_total_flops() + (attack * spec.steps if spec is not None else 0)
    return total


def _smoothing_protocol(cfg: BenchConfig, device) -> dict:
    from empirical.experiments.smoothing.config import PAPER_REGIMES, REGIMES, SmoothingStudyConfig
    from empirical.experiments.smoothing.regimes import attack_spec, build_regime
    from empirical.training.lockstep import train_lockstep

    sc = SmoothingStudyConfig(attack_steps=cfg.smooth_attack_steps)
    specs = [attack_spec(sc, sc.eps if REGIMES[r][1] else 0.0) for r in PAPER_REGIMES]
    b = sc.train.batch_size

    def nets():
        out = []
        for r in PAPER_REGIMES:
            torch.manual_seed(0)
            out.append(build_regime(sc, FASHION_MNIST, r).to(device))
        return out

    def lockstep(steps: int, graphs: bool | None, seed: int = 3):
        x, y = _data(b * steps, device, seed=seed)
        tc = replace(sc.train, epochs=1.0)
        ms = nets()
        recs = train_lockstep(ms, specs, x, y, FASHION_MNIST.normalize, tc, device, graphs=graphs, progress=False)
        sync(device)
        return ms, recs[0]

    lockstep(2, None)  # warm-up: CUDA context, cuDNN plans, the allocator
    _, rec = lockstep(cfg.smooth_steps, None)
    per_step = (rec["train_seconds"] - rec["lockstep"]["capture_seconds"]) / rec["T"]
    # one adversarial model alone, the eager way (A: plain LeNet, PGD-40 keeping the best iterate)
    a = specs[PAPER_REGIMES.index("A")]
    x, y = _data(b * (cfg.smooth_eager_steps + 1), device, seed=4)
    tc = replace(sc.train, epochs=1.0)

    def perturb(m, xb, yb):
        return pgd_linf(m, FASHION_MNIST.normalize, xb, yb, a.eps, a.step_size, a.steps, use_best=a.use_best)

    torch.manual_seed(0)
    m = build_regime(sc, FASHION_MNIST, "A").to(device)
    train(m, x[:b], y[:b], FASHION_MNIST.normalize, tc, device, perturb, progress=False)  # warm-up step
    sync(device)
    one = train(m, x[b:], y[b:], FASHION_MNIST.normalize, tc, device, perturb, progress=False)
    sync(device)
    alone_step = one["train_seconds"] / one["T"]
    adversarial = sum(1 for s_ in specs if s_ is not None)
    flops = _step_flops(nets(), specs, b, device)
    out = {"regimes": list(PAPER_REGIMES), "batch": b, "attack": asdict(a), "optimizer": "adam, lr 1e-3",
           "lockstep": {"models": len(specs), "steps": rec["T"], "cuda_graphs": rec["lockstep"]["cuda_graphs"],
                        "capture_seconds": rec["lockstep"]["capture_seconds"], "seconds_per_step": per_step,
                        "images_per_s": len(specs) * b / per_step,
                        "projected_paper_hours": PAPER_STEPS * per_step / 3600,
                        "flops_per_step": flops, "achieved_tflops": flops / per_step / 1e12},
           "one_model_eager": {"regime": "A", "steps": one["T"], "seconds_per_step": alone_step,
                               "images_per_s": b / alone_step,
                               "projected_paper_hours_all_regimes": adversarial * PAPER_STEPS * alone_step / 3600},
           "paper_steps_per_model": PAPER_STEPS, "paper_training_pflop": flops * PAPER_STEPS / 1e15}
    if torch.device(device).type == "cuda":
        # the same step with TF32 tensor cores (the study's --train-tf32): the paper's training is ~45 PFLOP,
        # 11 min of an H100 at its float32 peak, so full float32 may not fit one session's device minutes
        with fp32_mode("tf32"):
            lockstep(2, None)  # new cuDNN plans
            _, rec32 = lockstep(cfg.smooth_steps, None)
        per32 = (rec32["train_seconds"] - rec32["lockstep"]["capture_seconds"]) / rec32["T"]
        out["lockstep_tf32"] = {"steps": rec32["T"], "cuda_graphs": rec32["lockstep"]["cuda_graphs"],
                                "seconds_per_step": per32, "images_per_s": len(specs) * b / per32,
                                "projected_paper_hours": PAPER_STEPS * per32 / 3600,
                                "achieved_tflops": flops / per32 / 1e12,
                                "speedup_over_ieee": per_step / per32}
    else:
        out["lockstep_tf32"] = "n/a on CPU (TF32 is a CUDA tensor-core format)"
    if torch.device(device).type == "cuda" and rec["lockstep"]["cuda_graphs"]:
        graphed, _ = lockstep(3, True, seed=5)
        eager, _ = lockstep(3, False, seed=5)
        worst = None
        for mg, me in zip(graphed, eager):
            for pg, pe in zip(mg.state_dict().values(), me.state_dict().values()):
                c = compare(pg, pe, 1e-4)
                if worst is None or c["max_abs_diff"] / max(c["max_abs_reference"], 1e-30) > \
                        worst["max_abs_diff"] / max(worst["max_abs_reference"], 1e-30):
                    worst = c
        worst["what"] = "every weight of the 7 models after 3 CUDA-graphed lockstep steps == after 3 eager ones"
        out["graph_check"] = worst
    return out


def training_section(cfg: BenchConfig, device) -> dict:
    return {
        "natural_one_model": _train_one(cfg, device, cfg.train_steps, None),
        "pgd_one_model": _train_one(cfg, device, cfg.pgd_train_steps, _pgd(cfg.pgd_steps)),
        "natural_vmap": _train_stacked(cfg, device, cfg.train_steps, None),
        "pgd_vmap": _train_stacked(cfg, device, cfg.pgd_train_steps, cfg.pgd_steps),
        "pgd": {"eps": EPS, "step_size": ALPHA, "steps": cfg.pgd_steps, "use_best": False},
        "vmap_check": _vmap_check(device),
        "smoothing_protocol": _smoothing_protocol(cfg, device),
        "end_to_end": _end_to_end(cfg, device) if cfg.e2e else "skipped in this preset",
    }
