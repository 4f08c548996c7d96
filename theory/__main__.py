"""`python -m theory`: the ledger as a table; `--json` as JSON; `--verify` re-runs every check."""
from __future__ import annotations

import argparse
import sys
import textwrap

from theory.ledger import EMPIRICAL_STATUSES, STATUSES, all_claims, ledger_json


def _table(verify: bool) -> str:
    rows = []
    for c in all_claims():
        status = c.status
        if verify:
            v = c.check()
            status = f"{c.status} [{'ok' if v.status == c.status else 'MISMATCH: ' + v.status}]"
        evidence = c.evidence + (f" [reads results/{c.results}]" if c.results else "")
        rows.append((c.id, c.paper.split("-")[0] + ":" + c.ref, status, evidence, c))
    w_id = max(len(r[0]) for r in rows)
    w_ref = max(len(r[1]) for r in rows)
    w_st = max(len(r[2]) for r in rows)
    out = [f"{'id':<{w_id}}  {'paper:ref':<{w_ref}}  {'status':<{w_st}}  evidence", "-" * (w_id + w_ref + w_st + 60)]
    for cid, ref, st, ev, c in rows:
        lines = textwrap.wrap(ev, 90) or [""]
        out.append(f"{cid:<{w_id}}  {ref:<{w_ref}}  {st:<{w_st}}  {lines[0]}")
        pad = " " * (w_id + w_ref + w_st + 6)
        out += [pad + ln for ln in lines[1:]]
        if c.sharper:
            out.append(pad + "sharper: " + c.sharper)
        if c.corrected is not None:
            out.append(pad + f"corrected ({c.corrected.status}): " + c.corrected.statement)
    theory_rows = [r for r in rows if r[4].method != "empirical"]
    counts = {s: sum(1 for r in theory_rows if r[4].status == s) for s in STATUSES}
    out.append("")
    out.append(f"{len(theory_rows)} claims: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    emp = [r for r in rows if r[4].method == "empirical"]
    if emp:
        counts = {s: sum(1 for r in emp if r[4].status == s) for s in EMPIRICAL_STATUSES}
        out.append(f"{len(emp)} empirical claims (from results/, over training seeds): "
                   + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m theory", description=__doc__)
    ap.add_argument("--json", action="store_true", help="emit the ledger as a JSON list of entries")
    ap.add_argument("--verify", action="store_true", help="re-run every check (slow: minutes) and mark mismatches")
    args = ap.parse_args(argv)
    if args.json:
        print(ledger_json())
    else:
        print(_table(args.verify))
    return 0


if __name__ == "__main__":
    sys.exit(main())
