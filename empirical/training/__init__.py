"""Training: one trainer with the theorems' SGD (step c/t), noisy SGD and the usual recipes, checkpoints keyed by
what determines the weights, and several models trained in lockstep (CUDA-graphed on a GPU)."""
from __future__ import annotations

from empirical.training.checkpoints import atomic_save, config_digest, epoch_snapshot, load_or_build, read_snapshot  # noqa: F401
from empirical.training.lockstep import LOCKSTEP_OPTIMIZERS, AttackSpec, previous, train_lockstep, train_many_or_load  # noqa: F401
from empirical.training.trainer import OPTIMIZERS, Perturb, TrainConfig, accuracy, step_size, train, train_or_load  # noqa: F401
