"""Networks: the models the papers train (LeNet, MLP, ResNet, WRN), the feature-map smoothing blocks, and the
constants of a network that the bounds need (layer operator norms, Lipschitz and smoothness estimates)."""
from __future__ import annotations

from empirical.nets.constants import (  # noqa: F401
    SMOOTH_ACTS,
    assumption_gaps,
    conv_norm_upper,
    empirical_lipschitz,
    empirical_smoothness,
    input_norm_bound,
    layer_norms,
    linear_norm,
    operator_norm,
)
from empirical.nets.filters import (  # noqa: F401
    BORDERS,
    embedded_gaussian,
    filter2d_depthwise,
    gaussian_filter2d,
    gaussian_kernel2d,
    mean_filter2d,
    median_filter2d,
    nonlocal_gaussian,
    nonlocal_mean,
    nonlocal_weights,
)
from empirical.nets.models import (  # noqa: F401
    ACTIVATIONS,
    GRADCAM_LAYER,
    MODELS,
    BasicBlock,
    WideBlock,
    activation,
    build,
    eval_mode,
    gradcam_layer,
    lenet,
    mlp,
    resnet,
    wrn,
)
from empirical.nets.smoothing import FILTERS, SmoothingBlock, insert_smoothing_block  # noqa: F401
