"""Several models trained in lockstep on one batch stream, each training step a CUDA graph on the GPU.

Why: the feature-map smoothing study trains seven LeNets with PGD-40 adversarial training at batch 32 for
50 epochs (Bhusal et al., appendix A): 93,750 sequential steps of 41 forward+backward passes per model.
At that size every kernel is tiny, and an eager PyTorch step is bound by the CPU launching kernels
(~1-2 ms per pass on an H100, about an hour per model). Two things remove that bound:

- **CUDA graphs.** A whole training step (the PGD attack's 40 iterations, the update's forward and
  backward, Adam's step) is captured once into a graph and then replayed with one launch. The step reads
  its batch from static buffers; everything else (batch order, random starts) is drawn outside the graph
  from the same generators as :func:`empirical.training.train`, in the same order.
- **Lockstep.** The models see the same batches (they share the training seed, hence the batch order), so
  one batch is gathered per step and every model's graph is replayed on its own CUDA stream: the GPU runs
  the models' small kernels side by side.

On the CPU (and on CUDA with ``graphs=False``) the same step runs eagerly. There it is exactly
:func:`empirical.training.trainer.train` with a ``perturb`` of :func:`empirical.attacks.pgd_linf`: the same weights,
bit for bit (tested), so checkpoints keyed by the training configuration stay valid whichever path made them.
The per-model epoch-boundary snapshots have :func:`~empirical.training.trainer.train`'s format, so either can resume
the other's.

Scope: constant learning rate, no weight noise (the ``adam`` optimiser: the smoothing study's recipe). Other
optimisers go through :func:`~empirical.training.trainer.train`.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from empirical.attacks.pgd import pgd_from, project
from empirical.data import check_pixels, pixel_scale
from empirical.errors import DeadlineReached, TrainingDiverged, UserError
from empirical.nets.models import eval_mode
from empirical.runtime.progress import bar_disabled
from empirical.training.checkpoints import atomic_save, epoch_snapshot, load_or_build, read_snapshot
from empirical.training.trainer import TrainConfig, check_losses

LOCKSTEP_OPTIMIZERS = ("adam",)


@dataclass(frozen=True)
class AttackSpec:
    """The training attack of one model: L∞ PGD in pixel space (step ε/10 × 40 in the paper; FGSM-RS is
    ``steps=1, step_size=1.25·eps, use_best=False``)."""

    eps: float  # L∞ radius, pixel units of [0, 1] images
    step_size: float  # pixel units per step
    steps: int  # gradient steps, >= 1
    use_best: bool = True  # keep each image's best iterate (as attacks.pgd_linf's default)
    random_start: bool = True  # start uniformly in the ε-ball (clipped to [0, 1])


class _Job:
    """One model's training state: model, optimiser, random-start generator, static buffers, snapshots."""

    def __init__(self, model: nn.Module, attack: AttackSpec | None, cfg: TrainConfig, device: torch.device,
                 xs: torch.Tensor, steps: int, resume: Path | None, capturable: bool):
        self.model, self.attack, self.resume = model.to(device).train(), attack, resume
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, capturable=capturable)
        self.capturable = capturable
        # train() draws its random starts from the global generator re-seeded with cfg.seed; a generator of
        # one's own with the same seed yields the same stream, whatever the other models draw.
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed)
        self.u = torch.zeros_like(xs)  # the random start's U[0, 1] draws, refilled before every step
        self.loss = torch.zeros((), device=device)  # the step's loss, written by the step (or its graph)
        self.log = torch.zeros(steps, device=device)  # the loss of step t (1..T) at t - 1
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stream: torch.cuda.Stream | None = None
        self.before = 0.0  # seconds of training before a resume

    def set_capturable(self) -> None:  # load_state_dict restores the saved flag; ours must win
        for group in self.opt.param_groups:
            group["capturable"] = self.capturable
        for p, st in self.opt.state.items():  # a capturable Adam keeps its step counts beside the weights
            if self.capturable and "step" in st:
                st["step"] = st["step"].to(device=p.device, dtype=torch.float32)


def _check(models: Sequence[nn.Module], attacks: Sequence[AttackSpec | None], resumes, cfg: TrainConfig) -> None:
    cfg.validate()
    if cfg.optimizer not in LOCKSTEP_OPTIMIZERS:
        raise UserError(f"lockstep training supports the optimizers {', '.join(LOCKSTEP_OPTIMIZERS)} (constant "
                        f"step size); got {cfg.optimizer!r}: train it with empirical.training.trainer.train")
    if not models:
        raise UserError("lockstep training needs at least one model")
    if len(attacks) != len(models) or (resumes is not None and len(resumes) != len(models)):
        raise UserError(f"one attack (or None) and one resume path per model: {len(models)} models, "
                        f"{len(attacks)} attacks, {len(resumes) if resumes is not None else 0} resume paths")
    for a in attacks:
        if a is None:
            continue
        if not (0 <= a.eps <= 1) or not (a.step_size >= 0) or not isinstance(a.steps, int) or a.steps < 1:
            raise UserError(f"bad training attack {a}: eps in [0, 1], step_size >= 0 (pixel units), steps >= 1")


def train_lockstep(
    models: Sequence[nn.Module],
    attacks: Sequence[AttackSpec | None],
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
    resumes: Sequence[Path | None] | None = None,
    desc: str = "train",
    progress: bool = True,
    graphs: bool | None = None,
    deadline: float | None = None,
) -> list[dict]:
    """Train every model in place on (x_uint8 [n,C,H,W], y [n]); one record per model, as ``train`` returns.

    Model k is trained exactly as ``train(models[k], ..., perturb=PGD(attacks[k]))`` would train it (no
    perturbation when ``attacks[k]`` is None): same batches, same random starts, same updates.

    Args:
        models: built with ``torch.manual_seed(cfg.seed)`` just before, as ``train_or_load`` does.
        attacks: each model's training attack, or None for natural training.
        normalize: pixels in [0, 1] → network input.
        cfg: the shared training configuration (``adam`` only).
        resumes: per model, a file for its state at each epoch boundary (``train``'s format); an existing
            one of the same configuration is resumed from.
        graphs: capture each step in a CUDA graph; default: on CUDA devices. If capture fails the run
            continues eagerly, with a warning.
        deadline: wall-clock time (``time.time()`` seconds) after which the training stops at the next step
            boundary: every model's state is saved to its ``resumes`` file (mid-epoch too: the snapshot holds the
            rest of the epoch's batch order) and :class:`~empirical.errors.DeadlineReached` is raised. At least
            one step runs per call, so a chain of calls always progresses. The resumed training ends with the
            same weights as one never stopped (bit for bit on the same kernel path).
    """
    _check(models, attacks, resumes, cfg)
    check_pixels(x_uint8, what="training images")
    scale = pixel_scale(x_uint8.dtype)
    if deadline is not None and (resumes is None or any(r is None for r in resumes)):
        raise UserError("a training deadline needs a resume file per model (where its state is saved)")
    t0 = time.time()
    device = torch.device(device)
    graphs = device.type == "cuda" if graphs is None else bool(graphs)
    if graphs and device.type != "cuda":
        raise UserError(f"CUDA graphs need a CUDA device, got {device}")
    resumes = list(resumes) if resumes is not None else [None] * len(models)
    n = len(x_uint8)
    if cfg.batch_size > n:
        raise UserError(f"batch size {cfg.batch_size} exceeds the {n} training images")
    xd, yd = x_uint8.to(device), y.to(device)
    T = cfg.steps(n)
    # static batch buffers, shared by every model's step (graphs read them by address)
    xs = torch.zeros((cfg.batch_size, *xd.shape[1:]), device=device)
    ys = torch.zeros(cfg.batch_size, dtype=torch.long, device=device)
    jobs = [_Job(m, a, cfg, device, xs, T, r, capturable=graphs) for m, a, r in zip(models, attacks, resumes)]
    g = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)
    stamp = {"config": asdict(cfg), "T": T, "n": n}
    order = torch.empty(0, dtype=torch.long)
    start = 1
    capture_seconds = 0.0

    # ---- resume: every model from its own snapshot, all at the same step (the batch order is shared). Each
    # model keeps its previous snapshot beside the current one, so a run killed while writing the group's
    # snapshots (some new, some not yet) resumes from the last boundary that every model reached.
    cands = [_load(j, stamp, previous_too=False) for j in jobs]
    if len({t for c in cands for t in c}) != 1 or not all(cands):  # not all at one boundary: the older ones too
        cands = [_load(j, stamp, previous_too=True) for j in jobs]
    common = set.intersection(*[set(c) for c in cands])
    if common:
        t_done = max(common)
        for j, c in zip(jobs, cands):
            st = c[t_done]
            j.model.load_state_dict(st["model"])
            j.opt.load_state_dict(st["opt"])
            j.set_capturable()
            j.gen.set_state(st["cuda_rng"] if device.type == "cuda" else st["rng"])
            j.log[: len(st["losses"])] = st["losses"].to(device)
            j.before = st["seconds"]
        order, start = cands[0][t_done]["order"], t_done + 1
        g.set_state(cands[0][t_done]["g"])
    del cands

    def step_fn(j: _Job) -> None:
        x_in = xs
        if j.attack is not None:
            a = j.attack
            with torch.no_grad():
                x0 = project(xs + (2.0 * j.u - 1.0) * a.eps, xs, a.eps) if a.random_start else xs.clone()
            with eval_mode(j.model):
                x_in = pgd_from(j.model, normalize, xs, ys, x0, a.eps, a.step_size, a.steps, use_best=a.use_best)
        loss = F.cross_entropy(j.model(normalize(x_in)), ys)
        loss.backward()
        j.opt.step()
        j.loss.copy_(loss.detach())

    def draw(j: _Job) -> None:
        if j.attack is not None and j.attack.random_start:
            j.u.uniform_(generator=j.gen)  # = torch.rand(x.shape, generator) of attacks.random_perturb

    def snapshot(j: _Job, t_done: int) -> dict:
        # train()'s format: its global CPU (or CUDA) generator's state is this model's own generator's
        cpu = device.type == "cpu"
        return epoch_snapshot(stamp, t_done, j.model, j.opt, order, g,
                              torch.Generator(device=device).manual_seed(cfg.seed + 2).get_state(),
                              j.gen.get_state() if cpu else torch.get_rng_state(), None if cpu else j.gen.get_state(),
                              j.log[:t_done].cpu(), j.before + time.time() - t0)

    def verify(t_done: int, final: bool = False) -> None:
        """Divergence, as in ``train``: checked before any snapshot or checkpoint is written; the diverged model's
        snapshots are removed, so a rerun starts clean. ``final``: also the loss after the last update (on the last
        natural batch, in eval mode), which no training step sees."""
        for k, j in enumerate(jobs):
            who = "training" if len(jobs) == 1 else f"training of model {k + 1} of {len(jobs)}"
            try:
                check_losses(j.log[start - 1:t_done], start, n, cfg, who)
                if final and t_done >= start:
                    with torch.no_grad(), eval_mode(j.model):
                        after = F.cross_entropy(j.model(normalize(xs)), ys)
                    check_losses(after.view(1), t_done, n, cfg, who, when=" after its update")
            except TrainingDiverged:
                if j.resume is not None:
                    Path(j.resume).unlink(missing_ok=True)
                    previous(Path(j.resume)).unlink(missing_ok=True)
                raise

    def next_batch(t: int) -> None:
        nonlocal order
        if len(order) < cfg.batch_size:  # epoch boundary: a fresh seeded permutation
            if t > start:
                if graphs:
                    torch.cuda.synchronize(device)
                verify(t - 1)
                for j in jobs:
                    if j.resume is not None:
                        path = Path(j.resume)
                        if path.exists():
                            os.replace(path, previous(path))
                        atomic_save(snapshot(j, t - 1), path)
            order = torch.cat([order, torch.randperm(n, generator=g)])
        idx, order = order[: cfg.batch_size].to(device), order[cfg.batch_size:]
        xs.copy_(xd[idx].float().div_(scale))  # indexing copies: the caller's tensor is never touched
        ys.copy_(yd[idx])

    bar = tqdm(range(start, T + 1), desc=desc, disable=bar_disabled(progress), leave=False, mininterval=1.0,
               initial=start - 1, total=T)
    for t in bar:
        if deadline is not None and t > start and time.time() >= deadline:  # a step boundary: save and stop
            if graphs:
                torch.cuda.synchronize(device)
            verify(t - 1)  # never save a diverged state
            for j in jobs:
                path = Path(j.resume)
                if path.exists():
                    os.replace(path, previous(path))
                atomic_save(snapshot(j, t - 1), path)
            bar.close()
            raise DeadlineReached(f"training of {len(jobs)} model(s) stopped at its deadline after step {t - 1} of "
                                  f"{T}; its state is saved: re-run the same command to resume")
        next_batch(t)
        if graphs and jobs[0].graph is None:
            tc = time.time()
            ok = _capture_all(jobs, step_fn, device)
            capture_seconds = time.time() - tc
            graphs = ok  # if capture failed: eager from here on (the states are untouched; Adam stays capturable)
        if graphs:
            cur = torch.cuda.current_stream(device)
            for j in jobs:
                j.stream.wait_stream(cur)
                with torch.cuda.stream(j.stream):
                    draw(j)
                    j.graph.replay()
                    j.log[t - 1].copy_(j.loss)
            for j in jobs:
                cur.wait_stream(j.stream)
        else:
            for j in jobs:
                draw(j)
                j.opt.zero_grad(set_to_none=True)
                step_fn(j)
                j.log[t - 1].copy_(j.loss)
        if t % 500 == 0 and progress:
            bar.set_postfix(loss=" ".join(f"{j.log[t - 500:t].mean().item():.3f}" for j in jobs))
    bar.close()
    if graphs:
        torch.cuda.synchronize(device)
    verify(T, final=True)
    records = []
    for j in jobs:
        j.model.eval()
        tail = j.log[T - max(1, T // 10):].mean().item()
        records.append({"T": T, "n": n, "final_loss": tail, "train_seconds": j.before + time.time() - t0,
                        "config": asdict(cfg), "resumed_after_step": start - 1,
                        "lockstep": {"models": len(jobs), "cuda_graphs": graphs, "capture_seconds": capture_seconds,
                                     "note": "train_seconds is the wall time of the whole lockstep group"}})
    return records


def previous(path: Path) -> Path:
    """Where the snapshot before ``path``'s current one is kept."""
    return path.with_name(path.name + ".prev")


def _load(j: _Job, stamp: dict, previous_too: bool) -> dict[int, dict]:
    """The model's snapshots of this configuration (the current one, and the previous if asked), by the step
    they end at."""
    if j.resume is None:
        return {}
    files = (Path(j.resume),) + ((previous(Path(j.resume)),) if previous_too else ())
    states = [read_snapshot(f, stamp) for f in files]
    return {int(st["t"]): st for st in states if st is not None}


def _capture_all(jobs: list[_Job], step_fn: Callable[[_Job], None], device: torch.device) -> bool:
    """Capture one graph per job (warm-up steps first, on a side stream, as CUDA graphs require); the weights
    and optimiser states are put back exactly as they were, so capturing changes no result."""
    try:
        for j in jobs:
            saved_params = [p.detach().clone() for p in j.params]
            fresh = len(j.opt.state) == 0
            saved_state = {k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()}
                           for k, s in j.opt.state.items()}
            saved_u = j.u.clone()
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            try:
                with torch.cuda.stream(side):
                    for _ in range(3):
                        j.opt.zero_grad(set_to_none=True)
                        step_fn(j)
            finally:
                torch.cuda.current_stream(device).wait_stream(side)
                with torch.no_grad():  # undo the warm-up, in place (the graph will hold these addresses)
                    for p, v in zip(j.params, saved_params):
                        p.copy_(v)
                    for p, s in j.opt.state.items():
                        for name, v in s.items():
                            if torch.is_tensor(v):
                                v.zero_() if fresh or p not in saved_state else v.copy_(saved_state[p][name])
                    j.u.copy_(saved_u)
            j.opt.zero_grad(set_to_none=True)
            j.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(j.graph):
                step_fn(j)
            j.stream = torch.cuda.Stream(device)
        return True
    except Exception as e:  # an op that cannot be captured: say so and go on eagerly
        warnings.warn(f"CUDA graph capture failed ({type(e).__name__}: {e}); training eagerly", stacklevel=3)
        for j in jobs:
            j.graph, j.stream = None, None
        torch.cuda.synchronize(device)
        return False


def train_many_or_load(
    builds: Sequence[Callable[[], nn.Module]],
    key_parts: Sequence[dict],
    attacks: Sequence[AttackSpec | None],
    ckpt_dir: Path,
    train_kwargs: dict,
) -> list[tuple[nn.Module, dict, bool]]:
    """:func:`empirical.training.trainer.train_or_load` for several models: the ones with a checkpoint are loaded,
    the rest trained together by :func:`train_lockstep` and saved under the same keys (so a lockstep run and
    a one-by-one run share their checkpoints). Returns (model in eval mode, record, reused?) per model.
    A ``{n}`` in ``train_kwargs["desc"]`` (the progress label) becomes the number of models trained."""
    cfg: TrainConfig = train_kwargs["cfg"]
    out: list[tuple[nn.Module, dict, bool] | None] = [None] * len(builds)
    todo = []
    for i, (build, parts) in enumerate(zip(builds, key_parts)):
        model, record, key, path = load_or_build(build, parts, ckpt_dir, cfg.seed, train_kwargs.get("device", "cpu"))
        if record is not None:
            out[i] = (model, record, True)
        else:
            todo.append((i, key, path, model))
    if todo:
        partials = [p.with_name(f"{k}.partial.pt") for _, k, p, _ in todo]
        kw = dict(train_kwargs)
        if "desc" in kw:  # "{n}" in the progress label: the number of models this call trains
            kw["desc"] = kw["desc"].replace("{n}", str(len(todo)))
        records = train_lockstep([m for *_, m in todo], [attacks[i] for i, *_ in todo], resumes=partials, **kw)
        for (i, key, path, model), rec, partial in zip(todo, records, partials):
            rec.update(key=key, key_parts=key_parts[i])
            atomic_save({"state_dict": model.state_dict(), "record": rec}, path)
            partial.unlink(missing_ok=True)
            previous(partial).unlink(missing_ok=True)
            out[i] = (model, rec, False)
    return out  # type: ignore[return-value]
