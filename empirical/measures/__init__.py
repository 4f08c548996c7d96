"""What is measured on saliency maps: agreement between two maps (stability and fidelity errors, SSIM, top-k
overlap; top-k intersection, Kendall and Spearman under attack), explanation quality (Gini sparsity, relative
input/output/representation stability, ROAD) and the curvature of the network around an input."""
from __future__ import annotations

from empirical.measures.agreement import (  # noqa: F401
    REDUCTIONS,
    SSIM_NORMALIZATIONS,
    SSIM_WINDOWS,
    collapse_channels,
    fidelity_error,
    fit_power_law,
    ssim,
    stability_error,
    summarize,
    topk_indices,
    topk_intersection,
    topk_iou,
)
from empirical.measures.curvature import (  # noqa: F401
    cure_curvature,
    gradient_variation,
    input_hessian_norm,
    softplus_hessian_norm,
)
from empirical.measures.rank_agreement import (  # noqa: F401
    agreement_metrics,
    kendall_tau,
    spearman_rho,
    summarize_images,
)
from empirical.measures.faithfulness import RoadResult, noisy_linear_imputation, removal_order, road, road_auc  # noqa: F401
from empirical.measures.relative_stability import (  # noqa: F401
    AGGREGATIONS,
    STABILITY_KINDS,
    StabilityResult,
    aggregate_stability,
    linf_ball_perturbations,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
    relative_stabilities,
)
from empirical.measures.sparsity import gini  # noqa: F401
