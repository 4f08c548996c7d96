"""Training real networks and measuring the stability and fidelity of their saliency maps.

Layers, one package each (a module per concept inside):

- ``attribution``: the saliency methods (vanilla gradient, Integrated Gradients, SmoothGrad, Grad-CAM) on
  one batching engine, one registry (``METHODS``) and one dispatcher.
- ``nets``: the networks, the feature-map smoothing blocks and their filters, the constants the bounds need.
- ``measures``: agreement between maps, explanation quality (sparsity, relative stability, ROAD), curvature.
- ``attacks``: adversarial attacks in pixel space.
- ``training``: the trainer, checkpoints, lockstep training of several models.
- ``experiments``: the studies (``split``, ``smoothing``, ``loo``), each config, run, report and a thin cli.
- ``runtime``: result files, provenance, precision settings, the per-unit cache.
- ``data``, ``keyed_rng``, ``errors``, ``cli``: data sets, counter-based noise, the user-error type, CLI plumbing.

Entry points (``python -m empirical.split_stability``, ``.smoothing_study``, ``.loo_stability``) are thin
over the experiments.

The front door (:mod:`empirical.api`), for any ``nn.Module`` and plain tensors or a ``Dataset``::

    import empirical as es
    maps = es.attribute(model, x, target, method="ig")           # Captum-style arguments
    es.stability(net_a, net_b, x, y, method="vg", sigma=0.1)      # Ye & Farnia eq. 12, CI over images

``attribute``, ``sigma_abs``, ``sigma_rel``, ``stability``, ``fidelity``, ``quality``, ``train_disjoint_pair``
are loaded on first use, so ``import empirical`` stays light (no torch import until then).
"""

FRONT_DOOR = ("attribute", "sigma_abs", "sigma_rel", "stability", "fidelity", "quality", "train_disjoint_pair",
              "ImageEstimate")


def __getattr__(name: str):  # PEP 562: the front door is imported on first use, keeping `import empirical` light
    if name in FRONT_DOOR:
        from empirical import api

        return getattr(api, name)
    raise AttributeError(f"module 'empirical' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(FRONT_DOOR))
