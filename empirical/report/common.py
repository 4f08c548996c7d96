"""Pieces several blocks share: the command a run was made with, its device, figure links."""
from __future__ import annotations

DROP_FLAGS = {"--out": 1, "--no-progress": 0, "--data-root": 1}


def command(r: dict, module: str) -> str:
    """``python -m MODULE ...`` from a result's recorded argv, without output/data paths and progress flags."""
    argv = list(r.get("provenance", {}).get("argv") or [])[1:]
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in DROP_FLAGS:
            i += 1 + DROP_FLAGS[a]
            continue
        out.append(a)
        i += 1
    return " ".join(["python -m " + module] + out)


def device(r: dict) -> str:
    d = r.get("provenance", {}).get("device", {})
    if d.get("device") == "cuda":
        return f"one {d.get('gpu', 'GPU')}"
    threads = d.get("threads")
    return f"the {d.get('cpu_count', '?')}-core CPU" + (f" ({threads} thread{'s' if threads != 1 else ''})"
                                                          if threads else "")


def commit(r: dict, source: dict | None = None) -> str:
    """The code's commit: source.json's ``code_commit`` where the recorded one is known to be wrong."""
    if source and source.get("code_commit"):
        return source["code_commit"][:7]
    c = r.get("provenance", {}).get("git_commit") or "unknown"
    return c[:7] + ("-dirty" if c.endswith("-dirty") else "")
