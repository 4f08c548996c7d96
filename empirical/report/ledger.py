"""Blocks of the theory ledger (README, docs/theory_ledger.md), generated from `theory.ledger`."""
from __future__ import annotations

from empirical.report import md
from empirical.report.registry import Results, block

PAPERS = {"gaussian-smoothing-stability-fidelity.md": "Ye & Farnia 2025",
          "feature-map-smoothing-saliency.md": "Bhusal et al.",
          "trustworthy-saliency-adv-training-feature-smoothing-abstract.md": "Bhusal et al. (later abstract)",
          "enhanced-regularizers-attributional-robustness.md": "Sarkar et al. 2021"}
WORDS = {"proved": "proved", "holds-numerically": "hold numerically", "holds-sharper": "hold with a sharper constant",
         "fails": "fail"}


def _claims():
    from theory.ledger import STATUSES, all_claims  # the ledger is not moved by refactors of empirical/

    return all_claims(), STATUSES


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@block("ledger-counts")
def ledger_counts(res: Results) -> str:
    """The ledger's verdict counts."""
    claims, statuses = _claims()
    counts = [(sum(c.status == s for c in claims), WORDS[s]) for s in statuses]
    return f"**{len(claims)} claims: " + ", ".join(f"{n} {w}" for n, w in counts) + "**"


@block("ledger-fails")
def ledger_fails(res: Results) -> str:
    """Every claim that fails: the counterexample and the corrected statement with its own verdict."""
    claims, _ = _claims()
    rows = [(f"`{c.id}`", PAPERS[c.paper], _cell(c.ref), _cell(c.evidence),
             _cell(c.corrected.statement) + f" ({c.corrected.status})") for c in claims if c.status == "fails"]
    return md.table(("id", "paper", "as printed", "counterexample", "corrected statement (its verdict)"), rows)


@block("ledger-all")
def ledger_all(res: Results) -> str:
    """Every claim with its verdict (and the sharper constant where there is one)."""
    claims, _ = _claims()
    rows = [(f"`{c.id}`", PAPERS[c.paper], _cell(c.ref), c.status, _cell(c.sharper or "")) for c in claims]
    return md.table(("id", "paper", "as printed", "verdict", "sharper constant"), rows)
