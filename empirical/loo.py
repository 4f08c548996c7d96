r"""Leave-one-out saliency stability, the theorems' own quantity (Ye & Farnia eq. 10), measured.

For a training set S of n images and S' = S with the sample at one position p replaced by a fresh
draw from outside S, two networks are trained with the coupling of Hardt et al. (2016)'s proof:
identical initialisation W_0, identical sample sequence i_1, ..., i_T (drawn uniformly with
replacement from the n positions, as Ye & Farnia sec. 3.1 describe SGD), and for noisy SGD (eq. 3)
identical weight noise V_t ~ N(0, s²I) at every step. Then

    ε̂ = E_{S, S', A} E_{x ~ test} ‖Sal_{A(S)}(x, y) − Sal_{A(S')}(x, y)‖₂

is measured for the vanilla gradient (VG, eq. 4), Integrated Gradients (IG, eq. 6, baseline 0,
Gauss–Legendre nodes) and SmoothGrad (eq. 5) over σ, the SmoothGrad noise being the same draws for
every network (common random numbers, `saliency.draw_noise` keyed by test-image id).

What is compared with what:

- Eq. 10 bounds sup |E_A ℓ'(A(S)) − E_A ℓ'(A(S'))| with ℓ' = ‖Sal − Sal_ref‖ (eq. 7). By the triangle
  inequality |ℓ'(A(S)) − ℓ'(A(S'))| ≤ ‖Sal_{A(S)} − Sal_{A(S')}‖, so ε̂ (and its sup over x and over the
  kind of replaced sample) upper-bounds the left side of eq. 10 at the same (S, S', x). Hardt et al.'s
  argument, which Theorems 5 and 6 follow, bounds E_A ‖Sal_{A(S)} − Sal_{A(S')}‖ itself (through
  ‖Sal_W − Sal_W'‖ ≤ L'‖W − W'‖), so the bounds apply to ε̂ directly.
- The supremum over (S, S') is searched over the kind of replacement: ``random`` (a fresh draw),
  ``flip`` (the same draw with a wrong label), ``outlier`` (of a pool of fresh draws, the image
  farthest from its class mean in the network's input space) and ``outlier_flip``. The position p
  is uniform; under with-replacement sampling every position is equivalent.
- The disjoint-split proxy (eq. 12) on networks of the same kind: S and S2 disjoint of n images each
  (2n images), trained with the same W_0 / sample sequence / V (``proxy_shared``) or with their own
  (``proxy_indep``, what the paper's experiments do). Its ratio to ε̂ is reported, not assumed.

Choices (stated once, recorded in every result):

- Network: the theorems' chain f_W(x) = W_k φ(… φ(W_1 x)) without biases, φ = tanh by default (1-Lipschitz,
  1-smooth, φ(0) = 0; softplus has φ(0) = log 2 and is flagged). Initialisation: nn.Linear's default
  U(±1/√fan_in). Replicas are stacked [N, out, in] and trained at once with `torch.bmm` (one autograd
  backward of Σ_nets ℓ_net gives every net its own gradient, since nets share nothing).
- Step size α_t = min(lr, c/t) (`training.step_size`, ``sgd_ct``): it satisfies α_t ≤ c/t of
  Theorems 5-6 without a first step of size c; c is recorded and used in the bounds.
- T grid: the step sizes do not depend on the horizon, so one run to T_max is snapshot at every T of
  the grid: stability against T comes from the same trajectories (paired across T).
- Images: Fashion-MNIST average-pooled by ``downsample`` (default 2: 28×28 → 14×14, m = 196), then
  normalised with the data set's mean/std; σ is a fraction of the pixel range (`DatasetSpec.sigma_abs`).
- Random streams: per seed group (one per replica for the coupled nets, one more for ``proxy_indep``)
  a CPU generator for W_0, one for the sample sequence, and a generator on the device for V (drawn in
  blocks of `NOISE_BLOCK` steps). They depend only on (seed, replica), never on the other replicas,
  so the batched run equals each replica run alone. V depends on the device type (CPU vs CUDA).

Bounds: Theorem 5 (VG) and Theorem 6 (SmoothGrad) via `theory.bounds`, in log10, with the run's c, T,
n, B_i = max over all its networks of `empirical.bounds.layer_norms`, C = max ‖x‖₂ over the training
pool, and (L, β) either from Remark 4 (certified: L = Γ_{k,1}C; β corrected Remark 4(3) for SGD,
√(2/π)L/s for noisy SGD) or measured at the trained weights (`empirical.bounds.empirical_lipschitz`,
`empirical_smoothness`; lower estimates). No theorem of the paper bounds IG's stability: IG is measured only.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from empirical import bounds as netbounds
from empirical import data as data_mod
from empirical import metrics, models, saliency
from empirical.errors import UserError
from empirical.loo_report import PROXIES, assemble, bootstrap_exponent, fit_laws, write_outputs  # noqa: F401
from empirical.results import UnitCache, provenance
from empirical.training import TrainConfig, config_digest, step_size

ACTS = {"tanh": torch.tanh, "softplus": F.softplus, "relu": F.relu, "gelu": F.gelu}
KINDS = ("random", "flip", "outlier", "outlier_flip")
OPTIMIZERS = ("sgd_ct", "noisy_sgd")
NOISE_BLOCK = 32  # noisy SGD: steps of weight noise drawn per generator call


@dataclass(frozen=True)
class LooConfig:
    data_root: str | None = None  # Fashion-MNIST IDX folder; None: Debian's /usr/share/datasets/fashion-mnist
    downsample: int = 2  # average-pooling factor of the 28×28 images (2: 14×14, m = 196 inputs)
    activation: str = "tanh"  # φ of the chain network (the theorems assume 1-Lipschitz, 1-smooth, φ(0) = 0)
    width: int = 64  # hidden units per layer
    depth: int = 2  # hidden layers; k = depth + 1 weight matrices
    ns: tuple[int, ...] = (64, 128, 256)  # training-set sizes n
    steps: tuple[int, ...] = (256, 512, 1024, 2048)  # T grid: single-sample SGD steps (snapshots of one run)
    replicas: int = 8  # independent (S, S', W_0, sample sequence, V) draws per n
    kinds: tuple[str, ...] = KINDS  # which replaced samples (search toward the sup of eq. 10)
    optimizers: tuple[str, ...] = OPTIMIZERS  # sgd_ct: α_t = min(lr, c/t); noisy_sgd: the same on eq. 3
    lr: float = 0.05  # largest step size (parameter units per unit gradient)
    c: float = 2.0  # α_t ≤ c/t (the theorems' c); units: step size × steps
    weight_noise: float = 0.01  # noisy SGD: std s of V ~ N(0, s²I) (parameter units)
    sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)  # SmoothGrad σ, fraction of the pixel range
    test_images: int = 32  # test points x (a seeded random subset of the test set)
    draws: int = 16  # SmoothGrad noise draws per test image
    ig_steps: int = 16  # Integrated Gradients Gauss–Legendre nodes
    outlier_pool: int = 512  # fresh draws searched for the image farthest from its class mean
    seed: int = 0
    device: str = "cpu"
    max_points: int = 1 << 22  # memory cap: nets × points × features (floats) per saliency pass

    def validate(self) -> None:
        if self.activation not in ACTS:
            raise UserError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTS)}")
        for name, v, lo in (("downsample", self.downsample, 1), ("width", self.width, 1), ("depth", self.depth, 0),
                            ("replicas", self.replicas, 1), ("test images", self.test_images, 1),
                            ("draws", self.draws, 2), ("IG steps", self.ig_steps, 1),
                            ("outlier pool", self.outlier_pool, 1), ("max points", self.max_points, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise UserError(f"{name} must be an integer >= {lo}, got {v!r}")
        if 28 % self.downsample:
            raise UserError(f"downsample must divide 28 (the Fashion-MNIST side), got {self.downsample}")
        if not self.ns or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in self.ns):
            raise UserError(f"every n (training-set size) must be an integer >= 2 (the bounds have 1/(n−1)), got {self.ns}")
        if not self.steps or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in self.steps):
            raise UserError(f"every T (number of SGD steps) must be an integer >= 1, got {self.steps}")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise UserError(f"unknown replacement kind in {self.kinds}; valid: {', '.join(KINDS)}")
        if not self.optimizers or any(o not in OPTIMIZERS for o in self.optimizers):
            raise UserError(f"unknown optimizer in {self.optimizers}; valid: {', '.join(OPTIMIZERS)}")
        for s in self.sigmas:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
                raise UserError(f"SmoothGrad sigma must be a finite number > 0 (fraction of the pixel range; "
                                f"σ = 0 is the vanilla gradient, always measured), got {s!r}")
        for name, v in (("lr", self.lr), ("c", self.c)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserError(f"{name} must be a finite number > 0, got {v!r}")
        if "noisy_sgd" in self.optimizers and not (math.isfinite(self.weight_noise) and self.weight_noise > 0):
            raise UserError(f"noisy SGD needs weight noise > 0 (parameter units), got {self.weight_noise}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {self.device!r} asked for, but no CUDA GPU is available; use --device cpu")
        for o in self.optimizers:
            self.train_config(o).validate()

    def train_config(self, optimizer: str) -> TrainConfig:
        """The step-size schedule as `empirical.training` defines it (batch size 1: single-sample SGD)."""
        return TrainConfig(optimizer=optimizer, epochs=1.0, batch_size=1, lr=self.lr, c=self.c,
                           weight_noise=self.weight_noise if optimizer == "noisy_sgd" else 0.0, seed=self.seed)

    @property
    def roles(self) -> tuple[str, ...]:
        """The networks of one replica: S, one S' per kind, and the disjoint S2 (shared and own seeds)."""
        return ("S",) + tuple(f"S'_{k}" for k in self.kinds) + ("S2", "S2_indep")

    @property
    def comparisons(self) -> dict[str, tuple[str, str]]:
        out = {f"loo_{k}": ("S", f"S'_{k}") for k in self.kinds}
        out.update(proxy_shared=("S", "S2"), proxy_indep=("S", "S2_indep"))
        return out


def derive_seed(*parts: object) -> int:
    """A 62-bit seed from any key (base seed, stream name, replica): independent of every other key."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16) >> 2


# --------------------------------------------------------------------------- the batched chain network
def widths(cfg: LooConfig, m: int, num_classes: int = 10) -> list[int]:
    return [m] + [cfg.width] * cfg.depth + [num_classes]


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
    """Net j of a stack as an `nn.Sequential` of bias-free Linear layers (for `empirical.bounds`, `saliency`)."""
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
    step), so nets of one group get the very same V_t.
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
    for t in tqdm(range(1, T_max + 1), desc=desc, disable=not progress, leave=False, mininterval=1.0):
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
        if t in snapshots:
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


# --------------------------------------------------------------------------- one unit: (optimizer, n)
def run_unit(cfg: LooConfig, pool: dict, optimizer: str, n: int, progress: bool = False) -> dict:
    """Train all replicas of one (optimizer, n) to every T of the grid and measure; a JSON-ready record."""
    t0 = time.time()
    dev = torch.device(cfg.device)
    R, roles = cfg.replicas, cfg.roles
    x, y, spec = pool["x_train"], pool["y_train"], pool["spec"]
    means = class_means(x, y)
    reps = [replica_sets(x, y, means, n, cfg.kinds, derive_seed(cfg.seed, "data", n, r), cfg.outlier_pool)
            for r in range(R)]
    # net j = role_index · R + r; every role of replica r shares seed group r except S2_indep (group R + r)
    idx = torch.stack([reps[r]["sets"][role][0] for role in roles for r in range(R)])
    lab = torch.stack([reps[r]["sets"][role][1] for role in roles for r in range(R)])
    group = torch.tensor([(R + r) if role == "S2_indep" else r for role in roles for r in range(R)])
    group_ids = [("shared", r) for r in range(R)] + [("indep", r) for r in range(R)]
    dims = widths(cfg, x.shape[1])
    W0 = [w[group].to(dev) for w in init_params(dims, [derive_seed(cfg.seed, "init", *g) for g in group_ids])]
    order = sample_orders([derive_seed(cfg.seed, "order", n, *g) for g in group_ids], n, max(cfg.steps))[group]
    noise_seeds = [derive_seed(cfg.seed, "noise", n, *g) for g in group_ids]
    snaps = train(W0, x, idx, lab, order, cfg.train_config(optimizer), cfg.activation, cfg.steps, group, noise_seeds,
                  progress=progress, desc=f"{optimizer} n={n}")
    t_train = time.time() - t0

    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "test"))
    test_idx = torch.randperm(len(pool["x_test"]), generator=g)[:cfg.test_images].sort().values
    xt, yt = pool["x_test"][test_idx.to(dev)], pool["y_test"][test_idx.to(dev)]
    acc_x, acc_y = pool["x_test"][:2000], pool["y_test"][:2000]
    sig_abs = [float(spec.sigma_abs(s).max()) for s in cfg.sigmas]
    ri = {role: slice(i * R, (i + 1) * R) for i, role in enumerate(roles)}
    snapshots = []
    for T in sorted(cfg.steps):
        W = snaps[T]
        maps = saliency_maps(W, xt, yt, test_idx.to(dev), cfg.activation, sig_abs, cfg.draws, cfg.ig_steps, cfg.seed,
                             cfg.max_points)
        measures = []
        for key, mp in maps.items():
            method, sigma = ("sg", cfg.sigmas[sig_abs.index(float(key[3:]))]) if key.startswith("sg@") else (key, 0.0)
            scale = mp[ri["S"]].flatten(2).norm(dim=2)  # [R, M]
            for comp, (a, b) in cfg.comparisons.items():
                d = metrics.stability_error(mp[ri[a]].reshape(R * len(yt), -1), mp[ri[b]].reshape(R * len(yt), -1))
                d = d.view(R, len(yt))
                measures.append({"method": method, "sigma": sigma, "comparison": comp,
                                 "per_replica": d.mean(1).tolist(), "per_image": d.mean(0).tolist(),
                                 "scale_per_replica": scale.mean(1).tolist()})
        pdist = {comp: torch.sqrt(sum((w[ri[a]] - w[ri[b]]).flatten(1).pow(2).sum(1) for w in W)).tolist()
                 for comp, (a, b) in cfg.comparisons.items()}
        with torch.no_grad():
            acc = (forward([w[ri["S"]] for w in W], acc_x.expand(R, -1, -1), cfg.activation).argmax(2)
                   == acc_y).float().mean(1)
        snapshots.append({"T": T, "measures": measures, "param_distance": pdist, "test_accuracy_S": acc.tolist(),
                          "constants": network_constants(cfg, W, x, idx, lab, ri["S"])})
    return {"optimizer": optimizer, "n": n, "replicas": [rp["info"] for rp in reps], "test_indices": test_idx.tolist(),
            "sigma_abs": sig_abs, "snapshots": snapshots, "train_seconds": t_train,
            "eval_seconds": time.time() - t0 - t_train}


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


# --------------------------------------------------------------------------- the whole run
def unit_key(cfg: LooConfig, optimizer: str, n: int) -> str:
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("device", "max_points", "ns", "optimizers")}
    if optimizer != "noisy_sgd":
        fields.pop("weight_noise")
    return config_digest("loo-unit-v3", fields, optimizer, n, torch.device(cfg.device).type)


def run(cfg: LooConfig, out: Path, progress: bool = True) -> dict:
    """Every (optimizer, n) unit (cached in out/units, reused on a re-run), then results.json, CSVs, PNGs."""
    cfg.validate()
    t_start = time.time()
    out = Path(out)
    pool = prepare_pool(cfg)
    for n in cfg.ns:  # every size checked before any training
        need = 2 * n + 1 + cfg.outlier_pool
        if need > len(pool["x_train"]):
            raise UserError(f"n = {n} needs {need} training images (S, a disjoint S2 and {cfg.outlier_pool + 1} fresh "
                            f"draws); the pool has {len(pool['x_train'])}")
    cache = UnitCache(out)
    C = netbounds.input_norm_bound(pool["x_train"])
    units, reused = [], 0
    todo = [(o, n) for o in cfg.optimizers for n in sorted(cfg.ns)]
    bar = tqdm(todo, desc="units (optimizer, n)", disable=not progress)
    for o, n in bar:
        key = unit_key(cfg, o, n)
        rec = cache.get(key)
        if rec is None:
            rec = run_unit(cfg, pool, o, n, progress=progress)
            rec["key"] = key
            cache.put(key, rec)
        else:
            reused += 1
        units.append(rec)
    bar.close()
    results = assemble(cfg, units, {"C": C, "m": int(pool["x_train"].shape[1]), "spec": asdict(pool["spec"]),
                                    "n_pool": len(pool["x_train"])})
    results["reused_units"] = reused
    results["provenance"] = provenance(cfg.device)
    results["wall_seconds"] = time.time() - t_start
    write_outputs(results, out)
    return results
