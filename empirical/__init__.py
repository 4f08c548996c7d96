"""Training real networks and measuring the stability and fidelity of their saliency maps.

Modules, one per concept: `data`, `models`, `training`, `saliency`, `metrics`, `bounds`, `results`;
entry points (`python -m empirical.split_stability`, ...) are thin over them.
"""
