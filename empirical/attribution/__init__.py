r"""Batched gradient saliency: vanilla gradient, Input × Gradient, Integrated Gradients, SmoothGrad (and its
squared and VarGrad forms), Grad-CAM and Grad-CAM++, accepting what Captum accepts.

Every method takes ``model`` (an ``nn.Module`` mapping ``x`` of shape [N, C, H, W] or [N, D] to logits
[N, K]), ``x`` already in the space the model sees (normalised by the caller) and ``target`` (an int, a 0-d
tensor, a list or a tensor [N] of class indices; None for a model with one output per example), and returns
maps of ``x``'s shape, signed unless ``abs=True``, except Grad-CAM ([N, 1, H, W]). As in Captum, ``x`` may be a
tuple of tensors [N, ...] (a tuple of maps comes back; :mod:`empirical.attribution.inputs`), extra model
arguments go in ``additional_forward_args``, and Captum's argument names work (``baselines``, ``n_steps``,
``method``, ``internal_batch_size``, ``return_convergence_delta``, ``nt_samples``, ``nt_type``, ``stdevs``),
our older names (``baseline``, ``steps``, ``rule``, ``max_batch``, ``return_residual``, ``n_draws``) being
aliases; maps equal Captum's (tests/test_captum_compat.py). σ is a fraction of the pixel range
(:mod:`empirical.attribution.sigma`). A model that fails on the inputs gives a one-line error naming their
shapes. With :math:`f_y` the target logit:

- :func:`vanilla_gradient`: :math:`\nabla_x f_y(x)` (Ye & Farnia eq. 4; Simonyan et al. 2013).
- :func:`input_x_gradient`: :math:`x \odot \nabla_x f_y(x)` (Shrikumar et al. 2016).
- :func:`integrated_gradients`: :math:`(x - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha(x - x_0))\,d\alpha`
  (Ye & Farnia eq. 6; Sundararajan et al. 2017), by a quadrature rule (:func:`ig_quadrature`).
- :func:`smoothgrad`: :math:`\mathbb{E}_z[\mathrm{Sal}(x + z)]`, :math:`z \sim N(0, \sigma_c^2)` per channel
  (Ye & Farnia eq. 5; Smilkov et al. 2017), by Monte Carlo; :func:`smoothed` does the same for any map.
- :func:`gradcam`: Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018).
- :func:`saliency`: one dispatcher over :data:`METHODS`.

One module per method (``gradient``, ``integrated_gradients``, ``noise_tunnel``, ``cam``), the batching engine
they share (``engine``), Captum-style inputs packed for it (``inputs``), the σ unit (``sigma``), input checks
(``_checks``) and the memory-to-batch-size estimate (``memory``).

Choices made here:

- **Eval mode.** Gradients are taken of :math:`\sum_i f_{y_i}(x_i)` with one ``torch.autograd.grad`` per
  chunk; that gives every sample its own gradient only if sample i's logits do not depend on sample j.
  Batch norm in train mode (batch statistics) and dropout break that, so every function runs the model in
  eval mode and restores each submodule's ``training`` flag afterwards. Parameter ``.grad`` is never touched.
- **Batching.** Images × noise draws × path steps are flattened into one index and evaluated ``max_batch``
  points per forward/backward (``None``: all at once); partial sums are carried across chunk borders and
  per-image draw statistics merged with Chan et al.'s parallel update, so results do not depend on
  ``max_batch`` beyond float rounding. :func:`empirical.attribution.memory.max_batch_for_memory` estimates a ``max_batch``.
- **Noise (common random numbers).** Draw d of image i is counter-based: each value a hash of (seed, ids[i],
  d, position) (:mod:`empirical.keyed_rng`, :func:`draw_noise`), computed for a whole chunk at once on the
  device. So an image gets the same draws whatever batch it sits in and whatever ``max_batch`` is, the first
  m draws do not change when more are asked for, the two networks of a pair given the same seed and ids see
  the same noise, and CPU and CUDA draw the same numbers. (Until 2026-11-23 each (image, draw) reseeded a
  ``torch.Generator``: one kernel launch per draw, which held SmoothGrad to 8% of the GPU's gradient rate.)
- **Noise layout.** An explicit ``noise`` holds STANDARD normal draws :math:`\varepsilon` of shape
  [N, n_draws, *x.shape[1:]] (image-major, as Captum's ``NoiseTunnel`` repeats its inputs); the
  perturbation is :math:`z = \sigma_c \varepsilon`. To pass absolute perturbations, use ``stdevs=1.0``.
- **Smoothed IG** (``base="ig"``) is IG evaluated at :math:`x + z` with the baseline unchanged,
  :math:`\mathbb{E}_z[(x + z - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha(x + z - x_0))\,d\alpha]`, which is
  what Captum's ``NoiseTunnel(IntegratedGradients)`` computes.
- **Differentiable maps.** Maps are detached by default; inside ``with differentiable():`` every method keeps
  the autograd graph to ``x`` (``create_graph=True``) so a loss on the map has a gradient in ``x`` (the
  attribution attack :mod:`empirical.attacks.ifia`, attribution regularisers).
- **Monte-Carlo standard error**: sample standard deviation over draws (ddof = 1) divided by
  :math:`\sqrt{n}`, per pixel; NaN for a single draw (no estimate), zero for σ = 0 (no draws).
- **Grad-CAM upsampling**: bilinear, ``align_corners=False``, to ``x``'s H × W (``upsample=None`` keeps the
  layer resolution; ``"nearest"`` is what Captum's ``LayerAttribution.interpolate`` does by default).
"""
from __future__ import annotations

from empirical.attribution._checks import SaliencyFn  # noqa: F401
from empirical.attribution.cam import UPSAMPLE, gradcam  # noqa: F401
from empirical.attribution.dispatch import METHODS, saliency  # noqa: F401
from empirical.attribution.engine import differentiable, draw_noise  # noqa: F401
from empirical.attribution.gradient import input_x_gradient, vanilla_gradient  # noqa: F401
from empirical.attribution.integrated_gradients import RULES, ig_quadrature, integrated_gradients  # noqa: F401
from empirical.attribution.memory import max_batch_for_memory, shrink_to_fit  # noqa: F401
from empirical.attribution.noise_tunnel import BASES, NT_TYPES, smoothed, smoothgrad  # noqa: F401
from empirical.attribution.sigma import SIGMA_MAX, sigma_abs, sigma_rel  # noqa: F401
