r"""Curvature of a network around an input: how fast the input-gradient field turns.

The later version of the feature-map paper ("Training for Trustworthy Saliency Maps") ties attribution
stability to how smoothly the input-gradient field varies (ledger ``cv-mean-value``):
‖∇f(x+δ) − ∇f(x)‖ ≤ sup_t ‖∇²f(x+tδ)‖₂ ‖δ‖. For the ReLU / max-pool networks of the papers the Hessian is 0
almost everywhere, so the measures here split in two:

- defined for every network, at a finite radius (:mod:`.finite_difference`):
  :func:`gradient_variation` (‖∇f(x+δ) − ∇f(x)‖/‖δ‖ over random δ on an L2 sphere) and
  :func:`cure_curvature` (Moosavi-Dezfooli et al. 2019, CURE: ‖∇ℓ(x+h·z) − ∇ℓ(x)‖ along z ∝ sign ∇ℓ(x));
- Hessian norms (:mod:`.hessian`): :func:`input_hessian_norm` (0 for ReLU nets) and
  :func:`softplus_hessian_norm`, the same on a copy whose ReLUs are Softplus(β) (β recorded).

Units: images in pixel units of [0, 1]; f a logit, ℓ a cross-entropy in nats. Gradients are per pixel unit,
curvatures (Hessian norms, variations divided by the step) per pixel unit squared.
"""
from empirical.measures.curvature.finite_difference import (  # noqa: F401
    CureCurvature,
    GradientVariation,
    cure_curvature,
    gradient_variation,
    linf_matched_l2_radius,
    sphere_directions,
)
from empirical.measures.curvature.hessian import (  # noqa: F401
    SurrogateCurvature,
    input_hessian_norm,
    softplus_hessian_norm,
    softplus_surrogate,
)
