"""Every ledger entry: its fields are complete, and its check re-derives the recorded verdict."""
import json

import pytest

from theory.ledger import STATUSES, all_claims, ledger_json

CLAIMS = all_claims()


def test_ledger_not_empty_and_ids_unique():
    ids = [c.id for c in CLAIMS]
    assert len(ids) > 0 and len(ids) == len(set(ids))


def test_json_has_the_issue_fields():
    entries = json.loads(ledger_json())
    need = {"id", "paper", "ref", "statement", "reading", "method", "status", "counterexample", "corrected", "evidence"}
    for e in entries:
        assert need <= set(e), e["id"]
        assert e["status"] in STATUSES


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_check_rederives_recorded_verdict(claim):
    v = claim.check()
    assert v.status == claim.status, f"{claim.id}: recorded {claim.status}, check says {v.status}: {v.evidence}"
    if claim.corrected is not None:
        assert v.corrected_status == claim.corrected.status, f"{claim.id}: corrected statement re-check"
