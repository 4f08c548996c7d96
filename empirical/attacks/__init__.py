"""Adversarial attacks in pixel space: L-infinity PGD and FGSM with random start (Madry et al. 2018), robust
accuracy; and the attribution attack IFIA (Ghorbani et al. 2019, the protocol of Chen et al.'s RAR code)."""
from __future__ import annotations

from empirical.attacks.ifia import IFIAConfig, IFIAResult, ifia_attack, softplus_surrogate  # noqa: F401
from empirical.attacks.pgd import Normalize, fgsm_rs, pgd_from, pgd_linf, project, random_perturb, robust_accuracy, step  # noqa: F401
