"""The studies, one package each: ``split`` (disjoint-split stability, Ye & Farnia sec. 5.1), ``smoothing``
(feature-map smoothing x adversarial training, Bhusal et al.), ``loo`` (leave-one-out stability, the
theorems' own quantity). Each has ``config``, ``run``, ``report``/``figures`` and a thin ``cli``."""
