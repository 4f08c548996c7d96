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
"""
