"""Coupled replicas of small chain networks, trained together as stacked weight tensors: the training sets
(S and its one-sample replacements), single-sample SGD with the shared sample sequence and weight noise,
and the replicas' saliency maps."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from empirical import attribution as saliency
from empirical import data as data_mod
from empirical.errors import TrainingDiverged, UserError
from empirical.experiments.loo.config import ACTS, NOISE_BLOCK, OPTIMIZERS, LooConfig
from empirical.nets import constants as netbounds
from empirical.nets import models
from empirical.runtime.progress import bar_disabled
from empirical.training.trainer import DIVERGED_LOSS, TrainConfig, step_size


def init_params(dims: list[int], seeds: list[int], device="cpu") -> list[torch.Tensor]:
    """W_l ~ U(±1/√fan_in) (nn.Linear's default), one CPU generator per seed; list of [len(seeds), out, in]."""
    per_seed = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        per_seed.append([(torch.rand(o, i, generator=g) * 2 - 1) / math.sqrt(i) for i, o in zip(dims[:-1], dims[1:])])
    return [torch.stack([w[l] for w in per_seed]).to(device) for l in range(len(dims) - 1)]


def forward(params: list[torch.Tensor], x: torch.Tensor, act: str) -> torch.Tensor:
    """Logits [N, M, K] of N stacked chain networks on x [N, M, m] (each net its own M inputs)."""
    phi = ACTS[act]
    h = x
    for W in params[:-1]:
        h = phi(torch.bmm(h, W.transpose(1, 2)))
    return torch.bmm(h, params[-1].transpose(1, 2))


def to_module(params: list[torch.Tensor], j: int, act: str) -> nn.Sequential:
    """Net j of a stack as an `nn.Sequential` of bias-free Linear layers (for `empirical.nets.constants`, `saliency`)."""
    layers: list[nn.Module] = []
    for l, W in enumerate(params):
        lin = nn.Linear(W.shape[2], W.shape[1], bias=False).to(W.device)
        with torch.no_grad():
            lin.weight.copy_(W[j])
        layers.append(lin)
        if l < len(params) - 1:
            layers.append(models.activation(act))
    return nn.Sequential(*layers)


def sample_orders(seeds: list[int], n: int, T: int) -> torch.Tensor:
    """i_1..i_T uniform on {0..n−1} with replacement (Hardt et al.'s SGD), one CPU generator per seed: [G, T]."""
    return torch.stack([torch.randint(n, (T,), generator=torch.Generator().manual_seed(s)) for s in seeds])


def train(params: list[torch.Tensor], x_pool: torch.Tensor, idx: torch.Tensor, lab: torch.Tensor,
          order: torch.Tensor, tcfg: TrainConfig, act: str, snapshots: tuple[int, ...],
          group: torch.Tensor | None = None, noise_seeds: list[int] | None = None,
          progress: bool = False, desc: str = "train") -> dict[int, list[torch.Tensor]]:
    r"""Single-sample SGD of N stacked nets; returns {T: weights after T steps} for every T in `snapshots`.

    params: initial weights, list of [N, out, in] (not modified). x_pool [P, m]: network inputs.
    idx, lab [N, n]: net j's training set is x_pool[idx[j]] with labels lab[j]. order [N, T_max]: the
    position used at each step. Step t = 1..T_max: W ← W − α_t ∇_W ℓ(W + V_t; x_{i_t}, y_{i_t}),
    α_t = `training.step_size(tcfg, t, T_max)` = min(lr, c/t), cross-entropy ℓ, V_t = 0 for ``sgd_ct``;
    for ``noisy_sgd`` V_t ~ N(0, s²I) from the generator of noise_seeds[group[j]] (eq. 3, one draw per
    step), so nets of one group get the very same V_t. A loss that is NaN/inf or above ``DIVERGED_LOSS`` per net
    (see :mod:`empirical.training.trainer`) raises :class:`TrainingDiverged` (naming the step) at the next snapshot,
    before its weights are returned: nothing of a diverged training is cached.
    """
    tcfg.validate()
    if tcfg.optimizer not in OPTIMIZERS:
        raise UserError(f"loo training supports {', '.join(OPTIMIZERS)}, got {tcfg.optimizer!r}")
    T_max = max(snapshots)
    if order.shape[1] < T_max:
        raise UserError(f"order holds {order.shape[1]} steps, {T_max} asked for")
    dev = params[0].device
    N = params[0].shape[0]
    W = [p.detach().clone() for p in params]
    shapes = [w.shape[1:] for w in W]
    sizes = [int(np.prod(s)) for s in shapes]
    noisy = tcfg.optimizer == "noisy_sgd"
    if noisy:
        if group is None or noise_seeds is None:
            raise UserError("noisy SGD needs a noise group per net and one seed per group")
        gens = [torch.Generator(device=dev).manual_seed(s) for s in noise_seeds]
        group = group.to(dev)
    ar = torch.arange(N, device=dev)
    order, idx, lab = order.to(dev), idx.to(dev), lab.to(dev)
    out: dict[int, list[torch.Tensor]] = {}
    block = None
    # divergence: the first step with a non-finite loss, tracked on the device (no sync per step) and checked
    # at every snapshot, before a weight of it is kept
    first_bad = torch.zeros((), dtype=torch.long, device=dev)
    bad_loss = torch.zeros((), device=dev)
    for t in tqdm(range(1, T_max + 1), desc=desc, disable=bar_disabled(progress), leave=False, mininterval=1.0):
        pos = order[:, t - 1]
        xi = x_pool[idx[ar, pos]].unsqueeze(1)
        yi = lab[ar, pos]
        if noisy:
            if (t - 1) % NOISE_BLOCK == 0:  # [G, NOISE_BLOCK, Σ sizes], one generator call per group
                block = torch.stack([torch.randn(NOISE_BLOCK, sum(sizes), generator=g, device=dev) for g in gens])
            v = (block[:, (t - 1) % NOISE_BLOCK] * tcfg.weight_noise)[group]
            vs = torch.split(v, sizes, dim=1)
            Wv = [(w + u.view(N, *s)).requires_grad_(True) for w, u, s in zip(W, vs, shapes)]
        else:
            Wv = [w.detach().requires_grad_(True) for w in W]
        with torch.enable_grad():
            loss = F.cross_entropy(forward(Wv, xi, act)[:, 0], yi, reduction="sum")
            grads = torch.autograd.grad(loss, Wv)
        a = step_size(tcfg, t, T_max)
        W = [w - a * g for w, g in zip(W, grads)]
        new_bad = (first_bad == 0) & (~torch.isfinite(loss.detach()) | (loss.detach() > DIVERGED_LOSS * N))
        first_bad = torch.where(new_bad, t, first_bad)
        bad_loss = torch.where(new_bad, loss.detach(), bad_loss)
        if t in snapshots:
            if int(first_bad) or not all(bool(torch.isfinite(w).all()) for w in W):
                step = int(first_bad) or t
                loss_text = f"{float(bad_loss):.3g}" if int(first_bad) else "finite, weights NaN/inf"
                raise TrainingDiverged(f"training diverged at step {step} of single-sample SGD (loss = {loss_text}, "
                                       f"summed over {N} nets); lower --lr (now {tcfg.lr:g})")
            out[t] = [w.clone() for w in W]
    return out


# --------------------------------------------------------------------------- data and the replaced samples
def prepare_pool(cfg: LooConfig) -> dict:
    """Fashion-MNIST, average-pooled by cfg.downsample, normalised, flattened: train/test [P, m] on the device."""
    ds = data_mod.load("fashion-mnist", cfg.data_root)
    spec = replace(ds.spec, size=ds.spec.size // cfg.downsample)
    dev = torch.device(cfg.device)

    def prep(x_u8: torch.Tensor) -> torch.Tensor:
        x01 = x_u8.to(dev).float().div_(255.0)
        if cfg.downsample > 1:
            x01 = F.avg_pool2d(x01, cfg.downsample)
        return spec.normalize(x01).flatten(1)

    return {"spec": spec, "x_train": prep(ds.train_x), "y_train": ds.train_y.to(dev),
            "x_test": prep(ds.test_x), "y_test": ds.test_y.to(dev)}


def class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return torch.stack([x[y == k].mean(0) if (y == k).any() else x.new_zeros(x.shape[1]) for k in range(num_classes)])


def replica_sets(x: torch.Tensor, y: torch.Tensor, means: torch.Tensor, n: int, kinds: tuple[str, ...],
                 seed: int, outlier_pool: int, num_classes: int = 10) -> dict:
    """One replica's training sets, as indices into the pool (x [P, m], y [P]).

    S = perm[:n] and S2 = perm[n:2n] of a seeded permutation (S2 disjoint from S); the fresh draws come from
    perm[2n:], outside S ∪ S2: ``random`` = perm[2n], ``outlier`` = the farthest from its class mean of the
    next `outlier_pool`, ``flip``/``outlier_flip`` = the same images with the label shifted by a uniform
    1..K−1. The position p in S that S' replaces is uniform. Returns index/label tensors per role.
    """
    P = x.shape[0]
    need = 2 * n + 1 + outlier_pool
    if need > P:
        raise UserError(f"n = {n} needs {need} training images (S, a disjoint S2, {outlier_pool + 1} fresh draws); "
                        f"the pool has {P}: use n <= {(P - 1 - outlier_pool) // 2} or a smaller --outlier-pool")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(P, generator=g)
    S, S2, rest = perm[:n], perm[n:2 * n], perm[2 * n:]
    p = int(torch.randint(n, (1,), generator=g))
    shift = int(torch.randint(1, num_classes, (1,), generator=g))
    fresh = int(rest[0])
    cand = rest[1:1 + outlier_pool].to(x.device)
    dist = (x[cand] - means[y[cand]]).norm(dim=1)
    out = int(cand[int(dist.argmax())])
    yc = y.cpu()
    repl = {"random": (fresh, int(yc[fresh])), "flip": (fresh, (int(yc[fresh]) + shift) % num_classes),
            "outlier": (out, int(yc[out])), "outlier_flip": (out, (int(yc[out]) + shift) % num_classes)}
    sets = {"S": (S, yc[S]), "S2": (S2, yc[S2]), "S2_indep": (S2, yc[S2])}
    for k in kinds:
        i, lab = repl[k]
        idx, labs = S.clone(), yc[S].clone()
        idx[p], labs[p] = i, lab
        sets[f"S'_{k}"] = (idx, labs)
    info = {"position": p, "removed": int(S[p]), "removed_label": int(yc[S[p]]),
            "replacements": {k: {"index": repl[k][0], "label": repl[k][1]} for k in kinds},
            "outlier_distance": float(dist.max()), "S_digest": data_mod.indices_digest(S),
            "S2_digest": data_mod.indices_digest(S2)}
    return {"sets": sets, "info": info}


# --------------------------------------------------------------------------- batched saliency
def _input_grad(params, pts: torch.Tensor, y: torch.Tensor, act: str) -> torch.Tensor:
    """∇_x f_y at pts [N, M, m] (targets y [M]) for every net, one backward of Σ f_y."""
    with torch.enable_grad():
        pts = pts.detach().requires_grad_(True)
        score = forward(params, pts, act).gather(2, y.view(1, -1, 1).expand(pts.shape[0], -1, 1)).sum()
        (g,) = torch.autograd.grad(score, pts)
    return g


def saliency_maps(params, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, act: str, sigmas_abs: list[float],
                  draws: int, ig_steps: int, seed: int, max_points: int) -> dict[str, torch.Tensor]:
    """Maps [N, M, m] of all N nets on test points x [M, m]: "vg", "ig" (baseline 0) and "sg@<σ>" per σ_abs.

    The same maps as `saliency.vanilla_gradient`, `saliency.integrated_gradients` (Gauss–Legendre) and
    `saliency.smoothgrad` (noise `saliency.draw_noise(x, draws, seed, ids)`) on each net alone.
    """
    N, (M, m) = params[0].shape[0], x.shape
    chunk = max(1, max_points // (N * max(m, params[0].shape[1])))

    def grads(points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # points [Q, m] shared by all nets
        return torch.cat([_input_grad(params, points[lo:lo + chunk].expand(N, -1, -1), targets[lo:lo + chunk], act)
                          for lo in range(0, points.shape[0], chunk)], 1)

    maps = {"vg": grads(x, y)}
    alphas, weights = saliency.ig_quadrature(ig_steps, "gausslegendre", x.dtype, x.device)
    path = (alphas.view(-1, 1, 1) * x).reshape(-1, m)  # [steps·M, m], step-major
    gp = grads(path, y.repeat(ig_steps)).view(N, ig_steps, M, m)
    maps["ig"] = (weights.view(1, -1, 1, 1) * gp).sum(1) * x
    eps = saliency.draw_noise(x, draws, seed=seed, ids=ids)  # [M, draws, m], the same for every net and σ
    for s in sigmas_abs:
        pts = (x.unsqueeze(1) + s * eps).reshape(-1, m)
        maps[f"sg@{s!r}"] = grads(pts, y.repeat_interleave(draws)).view(N, M, draws, m).mean(2)
    return maps


def network_constants(cfg: LooConfig, W: list[torch.Tensor], x: torch.Tensor, idx: torch.Tensor, lab: torch.Tensor,
                      s_rows: slice, nets_for_estimates: int = 2) -> dict:
    """B_i = max over all nets of `layer_norms`; L_emp, β_emp (max over the first S nets, on 64 of their images)."""
    N = W[0].shape[0]
    B = [0.0] * len(W)
    for j in range(N):
        net = to_module(W, j, cfg.activation)
        for i, rec in enumerate(netbounds.layer_norms(net, x[:1])):
            B[i] = max(B[i], rec["B"])
    L_emp = beta_emp = 0.0
    for j in range(s_rows.start, min(s_rows.stop, s_rows.start + nets_for_estimates)):
        net = to_module(W, j, cfg.activation)
        xb, yb = x[idx[j, :64].to(x.device)], lab[j, :64].to(x.device)
        with torch.enable_grad():
            L_emp = max(L_emp, netbounds.empirical_lipschitz(net, xb, yb))
            beta_emp = max(beta_emp, netbounds.empirical_smoothness(net, xb, yb))
    return {"B": B, "L_emp": L_emp, "beta_emp": beta_emp}
