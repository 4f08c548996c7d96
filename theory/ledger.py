"""The ledger: one entry per claim of the papers, each with a verdict a machine re-derives.

A claim is registered once, next to the code that checks it (`theory/claims_*.py`), with the
verdict we recorded. `check()` recomputes the verdict from scratch (sympy or a numeric search);
`theory/test_ledger.py` asserts the recomputed verdict equals the recorded one for every entry, so
a recorded `fails` whose counterexample stopped failing, or a `proved` that sympy can no longer
decide, turns the suite red.

Statuses (issue 2):
- ``proved``: sympy decided it (simplify to 0, or a sign that sympy established).
- ``holds-numerically``: no violation found by the described search (hypothesis + targeted search).
- ``holds-sharper``: true, and a smaller constant is true as well; the constant is in ``sharper``.
- ``fails``: a concrete counterexample (numbers in ``counterexample``, re-checked by ``check``), and a
  corrected statement with its own status in ``corrected``.

Empirical claims (method ``empirical``, issue 18: what a paper says trained networks do) are decided from
committed result files, named in ``results``, with a bootstrap interval over training seeds
(:mod:`empirical.stats`): ``supported`` (every part's interval excludes 0 in the stated direction),
``contradicted`` (every part's excludes it in the other), ``not-significant`` (every part's contains 0),
``mixed`` (parts disagree; ``evidence`` lists each). Their check returns ``no-results`` when the files are
absent, and the ledger's test then skips the entry instead of failing.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Status = Literal["proved", "holds-numerically", "holds-sharper", "fails",
                 "supported", "contradicted", "not-significant", "mixed"]
Method = Literal["symbolic", "numeric", "empirical"]
STATUSES: tuple[str, ...] = ("proved", "holds-numerically", "holds-sharper", "fails")
EMPIRICAL_STATUSES: tuple[str, ...] = ("supported", "contradicted", "not-significant", "mixed")
NO_RESULTS = "no-results"  # an empirical check's status when its result files are absent
METHODS: tuple[str, ...] = ("symbolic", "numeric", "empirical")

PAPERS = {
    "gaussian-smoothing-stability-fidelity.md",
    "feature-map-smoothing-saliency.md",
    "trustworthy-saliency-adv-training-feature-smoothing-abstract.md",
    "enhanced-regularizers-attributional-robustness.md",
}


@dataclass(frozen=True)
class Correction:
    """A corrected statement for a claim that fails; itself checked and given its own status."""

    statement: str
    status: Status
    method: Method
    evidence: str


@dataclass(frozen=True)
class Verdict:
    """What a check found. ``details`` carries numbers worth printing (max ratio, cases searched...)."""

    status: Status
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)
    corrected_status: Status | None = None


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str  # file name in ../shared/papers/
    ref: str  # as printed: "eq. 7", "Theorem 5", "Proposition 1"
    statement: str  # as printed (de-mangled only where unambiguous)
    reading: str  # our unambiguous reading of the statement
    method: Method
    status: Status
    evidence: str  # one line: how the verdict was reached (cases, search, sympy call)
    check: Callable[[], Verdict] = field(repr=False, compare=False)
    counterexample: dict[str, Any] | None = None  # for `fails`: concrete numbers the check re-evaluates
    corrected: Correction | None = None  # for `fails`
    sharper: str | None = None  # for `holds-sharper`: the smaller constant that is also true
    results: str | None = None  # for `empirical`: the committed result files (glob under results/) it reads

    def __post_init__(self) -> None:
        valid = EMPIRICAL_STATUSES if self.method == "empirical" else STATUSES
        if self.status not in valid:
            raise ValueError(f"claim {self.id}: status {self.status!r} of a {self.method} claim not one of {valid}")
        if (self.method == "empirical") != (self.results is not None):
            raise ValueError(f"claim {self.id}: an empirical claim, and only one, names its `results`")
        if self.method not in METHODS:
            raise ValueError(f"claim {self.id}: method {self.method!r} not one of {METHODS}")
        if self.paper not in PAPERS:
            raise ValueError(f"claim {self.id}: paper {self.paper!r} not one of {sorted(PAPERS)}")
        if self.status == "proved" and self.method != "symbolic":
            raise ValueError(f"claim {self.id}: only a symbolic method can give `proved`")
        if self.status == "fails" and (self.counterexample is None or self.corrected is None):
            raise ValueError(f"claim {self.id}: `fails` needs a counterexample and a corrected statement")
        if self.status == "holds-sharper" and not self.sharper:
            raise ValueError(f"claim {self.id}: `holds-sharper` needs the sharper constant")

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "check"}
        if self.corrected is not None:
            d["corrected"] = dataclasses.asdict(self.corrected)
        return d


_REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in _REGISTRY:
        raise ValueError(f"duplicate claim id {claim.id!r}")
    _REGISTRY[claim.id] = claim
    return claim


def claim(**kwargs: Any) -> Callable[[Callable[[], Verdict]], Callable[[], Verdict]]:
    """Decorator form: ``@claim(id=..., paper=..., ...)`` over the check function registers it."""

    def wrap(fn: Callable[[], Verdict]) -> Callable[[], Verdict]:
        register(Claim(check=fn, **kwargs))
        return fn

    return wrap


def all_claims() -> list[Claim]:
    """Every registered claim, importing the claim modules first (registration is an import side effect)."""
    import importlib
    import pkgutil

    import theory

    for mod in pkgutil.iter_modules(theory.__path__):
        if mod.name.startswith("claims_"):
            importlib.import_module(f"theory.{mod.name}")
    return sorted(_REGISTRY.values(), key=lambda c: (c.paper, c.id))


def ledger_json(indent: int | None = 2) -> str:
    return json.dumps([c.to_json() for c in all_claims()], indent=indent, default=str)
