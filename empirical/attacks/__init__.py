"""Adversarial attacks in pixel space: L-infinity PGD and FGSM with random start (Madry et al. 2018), robust
accuracy."""
from __future__ import annotations

from empirical.attacks.pgd import Normalize, fgsm_rs, pgd_from, pgd_linf, project, random_perturb, robust_accuracy, step  # noqa: F401
