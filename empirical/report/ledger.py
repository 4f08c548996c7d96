"""Blocks of the theory ledger (README, docs/theory_ledger.md), generated from `theory.ledger`."""
from __future__ import annotations

from empirical.report import md
from empirical.report.registry import Results, block

PAPERS = {"gaussian-smoothing-stability-fidelity.md": "Ye & Farnia 2025",
          "feature-map-smoothing-saliency.md": "Bhusal et al.",
          "trustworthy-saliency-adv-training-feature-smoothing-abstract.md": "Bhusal et al. (later abstract)",
          "enhanced-regularizers-attributional-robustness.md": "Sarkar et al. 2021"}
WORDS = {"proved": "proved", "holds-numerically": "hold numerically", "holds-sharper": "hold with a sharper constant",
         "fails": "fail", "supported": "supported", "contradicted": "contradicted",
         "not-significant": "not significant", "mixed": "mixed"}


def _claims():
    from theory.ledger import STATUSES, all_claims  # the ledger is not moved by refactors of empirical/

    return [c for c in all_claims() if c.method != "empirical"], STATUSES


def _empirical():
    from theory.ledger import EMPIRICAL_STATUSES, all_claims

    return [c for c in all_claims() if c.method == "empirical"], EMPIRICAL_STATUSES


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@block("ledger-counts")
def ledger_counts(res: Results) -> str:
    """The ledger's verdict counts."""
    claims, statuses = _claims()
    counts = [(sum(c.status == s for c in claims), WORDS[s]) for s in statuses]
    text = f"**{len(claims)} claims: " + ", ".join(f"{n} {w}" for n, w in counts) + "**"
    emp, emp_statuses = _empirical()
    if emp:
        n = [(sum(c.status == s for c in emp), WORDS[s]) for s in emp_statuses]
        text += (f"; and {len(emp)} empirical claims about trained networks, decided over training seeds: "
                 + ", ".join(f"{k} {w}" for k, w in n if k))
    return text


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


@block("ledger-empirical", "smoothing_study-medium*/results.json")
def ledger_empirical(res: Results) -> str:
    """The empirical claims (what a paper says trained networks do), each with its verdict over training seeds
    and the result files it reads."""
    claims, _ = _empirical()
    rows = [(f"`{c.id}`", _cell(f"{PAPERS[c.paper]}, {c.ref}: “{c.statement}”"), _cell(c.reading),
             c.status.replace("-", " "), _cell(c.check().evidence), f"`results/{c.results}`") for c in claims]
    return md.table(("id", "what the paper says", "our reading", "verdict", "evidence (95 % CI over seeds)",
                     "reads"), rows)
