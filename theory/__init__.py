"""Machine-checked ledger of the saliency-stability papers' claims, and the bound evaluators.

`python -m theory` prints the ledger; `python -m theory --json` emits it; `pytest theory` re-derives it.
"""
