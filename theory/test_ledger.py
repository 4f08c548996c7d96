"""Every ledger entry: its fields are complete, and its check re-derives the recorded verdict."""
import json

import pytest

from theory.ledger import EMPIRICAL_STATUSES, NO_RESULTS, STATUSES, all_claims, ledger_json

CLAIMS = all_claims()


def test_ledger_not_empty_and_ids_unique():
    ids = [c.id for c in CLAIMS]
    assert len(ids) > 0 and len(ids) == len(set(ids))


def test_json_has_the_issue_fields():
    entries = json.loads(ledger_json())
    need = {"id", "paper", "ref", "statement", "reading", "method", "status", "counterexample", "corrected", "evidence"}
    for e in entries:
        assert need <= set(e), e["id"]
        assert e["status"] in (EMPIRICAL_STATUSES if e["method"] == "empirical" else STATUSES)


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_check_rederives_recorded_verdict(claim):
    v = claim.check()
    if v.status == NO_RESULTS:
        pytest.skip(f"{claim.id}: its result files ({claim.results}) are absent")
    assert v.status == claim.status, f"{claim.id}: recorded {claim.status}, check says {v.status}: {v.evidence}"
    if claim.corrected is not None:
        assert v.corrected_status == claim.corrected.status, f"{claim.id}: corrected statement re-check"
