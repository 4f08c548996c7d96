"""python -m empirical.report: the committed Markdown equals what results/ renders, and any hand edit fails."""
import re
import shutil
from pathlib import Path

import pytest

from empirical.report import BLOCKS, render
from empirical.report.__main__ import main
from empirical.report.files import MarkerError, fill, markdown_files, run, spans
from empirical.report.registry import ROOT, Results

BLOCK = re.compile(r"<!-- report:([a-z0-9-]+) -->\n(.*?)<!-- /report:\1 -->", re.S)


def test_committed_tree_passes_the_check(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().out
    # and every registered block has a home (a block no file holds would be dead code)
    assert run(ROOT, write=False).unused == []


def _tree_with_readme(tmp_path: Path, text: str) -> Path:
    """A checkout holding only README.md and (a link to) the committed results."""
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    (tmp_path / "results").symlink_to(ROOT / "results", target_is_directory=True)
    return tmp_path


def test_a_digit_edited_by_hand_fails_the_check(tmp_path, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = next(m for m in BLOCK.finditer(text) if m.group(1) == "headline")
    body = m.group(2)
    i = next(i for i, ch in enumerate(body) if ch.isdigit())
    edited = body[:i] + str((int(body[i]) + 1) % 10) + body[i + 1:]
    root = _tree_with_readme(tmp_path, text[:m.start(2)] + edited + text[m.end(2):])

    assert main(["--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["README.md: block 'headline' differs from what results/ renders now"]
    # rendering repairs it, atomically, and leaves the prose alone
    assert main(["--root", str(root)]) == 0
    assert (root / "README.md").read_text(encoding="utf-8") == text
    assert main(["--check", "--root", str(root)]) == 0


def test_unknown_and_broken_markers(tmp_path, capsys):
    root = _tree_with_readme(tmp_path, "x\n<!-- report:no-such-block -->\n<!-- /report:no-such-block -->\n")
    assert main(["--check", "--root", str(root)]) == 1
    assert "unknown block 'no-such-block'" in capsys.readouterr().err
    with pytest.raises(MarkerError, match="not closed"):
        spans("<!-- report:headline -->\nx\n")
    with pytest.raises(MarkerError, match="opens inside"):
        spans("<!-- report:a -->\n<!-- report:b -->\n<!-- /report:b -->\n<!-- /report:a -->\n")
    with pytest.raises(MarkerError, match="closing markers"):
        spans("<!-- /report:a -->\n")


def test_fill_replaces_only_block_bodies():
    text = "intro\n<!-- report:a -->\nold\n<!-- /report:a -->\nmiddle\n<!-- report:b -->\n<!-- /report:b -->\nend\n"
    assert fill(text, {"a": "new A", "b": "| t |"}) == (
        "intro\n<!-- report:a -->\nnew A\n<!-- /report:a -->\nmiddle\n<!-- report:b -->\n| t |\n<!-- /report:b -->\n"
        "end\n")


def test_print_one_block(capsys):
    assert main(["--print", "ledger-counts"]) == 0
    assert capsys.readouterr().out.startswith("**") and main(["--print", "nope"]) == 2


def test_list_names_every_block(capsys):
    assert main(["--list"]) == 0
    listed = {line.split(":")[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == set(BLOCKS)


NUMBER = re.compile(r"\d+\.\d+|\d+ ?%|\d+(?:\.\d+)?×|\b\d{2,}(?:,\d{3})* (?:s|ms|min|images|pairs|seeds|replicas)\b")


def test_readme_prose_has_no_result_numbers():
    # numbers of results live only inside generated blocks; outside them (and outside code) the README is prose
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    prose = BLOCK.sub("", text)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    prose = re.sub(r"`[^`]*`|\([^)]*\.md[^)]*\)", "", prose)
    assert NUMBER.findall(prose) == []


def test_generated_intervals_name_their_unit():
    res = Results()
    for name in ("split-gpu-table", "loo-gpu-n", "smoothing-seeds", "bench-gpu-saliency"):
        md = render(name, res)
        assert re.search(r"CI over \d+ (model pairs|replicas|seeds)|over the \d+ (model pairs|timing repeats)", md), name


def test_docs_pages_are_all_checked():
    names = {p.name for p in markdown_files(ROOT)}
    assert {"README.md", "split_stability.md", "loo_stability.md", "smoothing_study.md", "benchmarks.md",
            "theory_ledger.md"} <= names


def test_seed_replicates_are_found_automatically(tmp_path):
    # a new results/smoothing_study-medium-seed<k> joins the verdicts without code changes
    from empirical.report import smoothing

    res = Results()
    seeds = [s for s, _, _ in smoothing.seed_runs(res)]
    assert seeds[:2] == [0, 1] and seeds == sorted(seeds)
    root = tmp_path
    (root / "results").mkdir()
    for folder in res.folders(smoothing.SEEDS):
        (root / "results" / folder).symlink_to(ROOT / "results" / folder, target_is_directory=True)
    clone = root / "results" / "smoothing_study-medium-seed9"
    clone.mkdir()
    text = (ROOT / "results" / "smoothing_study-medium-seed1" / "results.json").read_text(encoding="utf-8")
    (clone / "results.json").write_text(text.replace('"seed": 1', '"seed": 9'), encoding="utf-8")
    got = [s for s, _, _ in smoothing.seed_runs(Results(root))]
    assert got == seeds + [9]
    shutil.rmtree(clone)


def test_import_run_copies_results_not_checkpoints(tmp_path):
    from empirical.report.import_run import main as import_main

    run = tmp_path / "run"
    shutil.copytree(ROOT / "results" / "smoothing_study-medium-seed1", run)
    (run / "source.json").unlink()
    (run / "model.pt").write_bytes(b"x")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "a.json").write_text("{}")
    root = tmp_path / "tree"
    (root / "results").mkdir(parents=True)
    from empirical.runtime.files import mark_complete

    mark_complete(run)  # what a finished run writes last (the committed copy predates the marker)
    assert import_main([str(run), "smoothing_study-medium-seed7", "--root", str(root), "--commit", "abc1234",
                        "--what", "a seed replicate"]) == 0
    dest = root / "results" / "smoothing_study-medium-seed7"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [p.name for p in run.iterdir() if p.is_file() and p.suffix != ".pt" and p.name != "COMPLETE"] + ["source.json"])
    src = __import__("json").loads((dest / "source.json").read_text())
    assert src["command"].startswith("python -m empirical.smoothing_study --preset medium --seed 1")
    assert src["commit"] == "abc1234" and src["wall_seconds"] > 0 and "7 models" in src["training"]
