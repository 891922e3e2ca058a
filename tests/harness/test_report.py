"""The results store (results/*.json) and `ctrl-bench report`: README.md's results section and
docs/results.md are exactly what the store renders, a number edited by hand is caught, a row of one
seed shows no "± 0.000", and a table made by older code than its method's says so."""

import glob
import json
import re
import shutil
from pathlib import Path

import pytest

from ctrl_bench.harness import cli, report, store
from ctrl_bench.harness.records import Cell, RecordStore

ROOT = Path(__file__).resolve().parents[2]
SETUP = ("pip install -e . && ctrl-bench --out runs/", 'pip install -e ".[test]" && python -m pytest -q')
COMMAND = "ctrl-bench --methods ctrl der --seeds 0 1 2 --out runs/main"


def checkout(tmp_path: Path) -> Path:
    """A root with the project's README (its markers included), an empty docs/ and no store."""
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "README.md", root / "README.md")
    return root


def record(method: str, seed: int, last: float, code: str | None = None, memory: int | None = None) -> dict:
    """A record shaped like the harness's, of the generated scenario "tiny-2"."""
    code = code or report.current_code(method)
    return {"scenario": "tiny-2", "method": method, "seed": seed, "accuracy_matrix": [[1.0, 0.0], [last, last]],
            "last_accuracy": last, "average_incremental_accuracy": (1 + last) / 2, "forgetting": 0.1 + 0.01 * seed,
            "bwt": -0.1 - 0.01 * seed, "wall_seconds": 40.0 + seed, "task_il_last_accuracy": min(1.0, last + 0.05),
            "memory_floats": 784 * memory if memory else 32_250, "train_flops": 1.2e12 + 1e10 * seed,
            "seen_accuracy": [1.0, last], "experience_classes": [[0, 1], [2, 3]], "memory_images": memory,
            "memory_budget": f"{memory} images" if memory else "feature statistics", "oracle": None,
            "preset": "quick", "epochs_per_experience": [30, 30], "budget": {"batch_size": 64}, "evaluated_on": "test",
            "settings": {"preset": "quick"},
            "reuse_key": {"settings": "s", "data": "d", "code": code, "device": "cpu: test"},
            "provenance": {"command": COMMAND, "git_commit": "0" * 40, "device": "cpu: test", "torch_threads": 1,
                           "code_version": code, "finished_at": f"2026-01-01T00:00:0{seed}+00:00"}}


def runs_folder(tmp_path: Path, records: list[dict]) -> Path:
    out = tmp_path / "runs"
    for r in records:
        RecordStore(str(out)).save(Cell.of(r), r)
    return out


def readme_section(root: Path) -> str:
    return (root / "README.md").read_text().split(report.BEGIN)[1].split(report.END)[0]


def rendered(tmp_path: Path, records: list[dict], *add: str) -> Path:
    root = checkout(tmp_path)
    out = runs_folder(tmp_path, records)
    assert report.main(["add", "main", str(out), "--root", str(root), "--headline", *add]) == 0
    assert report.main(["--root", str(root)]) == 0
    return root


# ---------------------------------------------------------------- the project's own files
def test_the_readme_and_results_doc_are_what_report_renders(capsys):
    assert report.main(["--root", str(ROOT), "--check"]) == 0, capsys.readouterr().err


def test_the_readme_is_a_front_page_and_no_doc_names_an_issue_or_a_commit():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 130
    assert all(command in readme for command in SETUP)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert not re.search(r"\bissues?\b[^.\n]{0,20}\d+|#\d+\b", text, re.I), path
        if path.name != "results.md":  # which states the commit each table was made at
            assert not re.search(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", text), path


# ---------------------------------------------------------------- a store made here
def test_records_of_a_run_become_a_table_that_renders_and_a_hand_edit_is_caught(tmp_path, tiny_npz, capsys):
    out = tmp_path / "runs"
    assert cli.main(["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", "--methods", "naive", "replay",
                     "--seeds", "0", "1", "--epochs", "1", "--backbone", "mlp", "--batch-size", "32", "--mem-size",
                     "40", "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    root = checkout(tmp_path)
    assert cli.main(["report", "add", "tiny", str(out), "--root", str(root), "--headline", "--reference", "naive",
                     "--command", "ctrl-bench --methods naive replay --seeds 0 1"]) == 0
    lines = (root / "results" / "tiny.json").read_text().splitlines()
    stored = [json.loads(line.strip().rstrip(",")) for line in lines if line.startswith("    {")]
    assert len(stored) == 4 and all(set(r) <= set(store.STORED_FIELDS) for r in stored)  # one record a line
    assert {"last_accuracy", "memory_floats", "train_flops", "wall_seconds", "device", "code_version"} <= set(stored[0])
    assert cli.main(["report", "--root", str(root)]) == 0
    section, doc = readme_section(root), (root / "docs" / "results.md").read_text()
    assert "| naive " in section and "| replay (40 images) " in section
    assert f"ctrl-bench {store.package_version()};" in section
    assert "ctrl-bench --methods naive replay --seeds 0 1\n" in doc and "at commit " in doc
    figures = sorted(glob.glob(str(root / "docs" / "figures" / "results" / "*.png")))
    assert figures and "(docs/figures/results/tiny-tiny-2-memory.png)" in section
    before = {path: Path(path).read_bytes() for path in figures}
    capsys.readouterr()
    assert report.main(["--root", str(root), "--check"]) == 0
    assert report.render(str(root)) == []  # a second render changes nothing, figures included
    assert {path: Path(path).read_bytes() for path in figures} == before
    for name in ("README.md", "docs/results.md"):
        path = root / name
        good = path.read_text()
        number = re.search(r"\| (\d\.\d{3})", good).group(1)
        path.write_text(good.replace(f"| {number}", f"| {float(number) + 0.001:.3f}", 1))
        assert report.main(["--root", str(root), "--check"]) == 1
        said = capsys.readouterr().err
        assert said.count("\n") == 1 and name in said
        path.write_text(good)
    assert report.main(["--root", str(root), "--check"]) == 0


def test_a_row_of_one_seed_shows_its_value_without_a_spread(tmp_path):
    records = [record("ctrl", 0, 0.913)] + [record("der", s, 0.93 + 0.002 * s, memory=500) for s in range(3)]
    root = rendered(tmp_path, records, "--methods", "ctrl", "der")
    for text in (readme_section(root), (root / "docs" / "results.md").read_text()):
        assert "± 0.000" not in text
        assert "| ctrl [seed 0] | 0.913 | 0.957 |" in text
        assert re.search(r"\| der \(500 images\) \| 0\.932 ± 0\.002 \|", text)
    assert "seeds 0–2" in readme_section(root)


def test_a_table_older_than_its_methods_code_says_so(tmp_path):
    records = [{**record("ctrl", s, 0.91), "min_accuracy": 0.8 + 0.01 * s, "per_class_accuracy": [0.9, None]}
               for s in range(2)] + [record("der", s, 0.93, code="0" * 16, memory=500) for s in range(2)]
    root = rendered(tmp_path, records)
    doc = (root / "docs" / "results.md").read_text()
    for text in (readme_section(root), doc):
        assert f"| der (500 images) [{report.OLDER_CODE}] |" in text and "| ctrl |" in text
        assert "**Older code:** the records of der were made by an older version" in text
    # a continual-evaluation number the records have is stored and gets its column in docs/results.md
    assert "| Min accuracy |" in doc and "| 0.805 ± 0.005 |" in doc and "Min accuracy" not in readme_section(root)
    stored = store.load_tables(str(root))["main"]["records"]
    assert [r.get("per_class_accuracy") for r in stored if r["method"] == "ctrl"] == [[0.9, None]] * 2


def test_an_empty_store_says_so_and_a_readme_without_markers_is_refused(tmp_path, capsys):
    root = checkout(tmp_path)
    assert report.main(["--root", str(root)]) == 0
    assert "No results are stored yet." in readme_section(root)
    assert "No results are stored yet." in (root / "docs" / "results.md").read_text()
    (root / "README.md").write_text("# no markers\n")
    assert report.main(["--root", str(root)]) == 1
    assert report.BEGIN in capsys.readouterr().err
    assert report.main(["add", "bad name", str(tmp_path), "--root", str(root)]) == 1
    assert report.main(["add", "empty", str(tmp_path), "--root", str(root)]) == 1


def test_named_rows_from_several_run_folders_make_one_table(tmp_path):
    """An ablation: each variant ran into its own folder and joins the table as a named row; adding a
    variant again replaces its row, and the header stored first is kept."""
    root = checkout(tmp_path)
    full = runs_folder(tmp_path / "full", [record("ctrl", 0, 0.9)])
    without = runs_folder(tmp_path / "without", [record("ctrl", 0, 0.7)])
    assert report.main(["add", "ablation", str(full), "--root", str(root), "--title", "Leave one out",
                        "--no-figures"]) == 0
    for last in (0.6, 0.7):  # the second replaces the first
        folder = runs_folder(tmp_path / f"without-{last}", [record("ctrl", 0, last)])
        assert report.main(["add", "ablation", str(folder), "--root", str(root), "--variant", "without anchors"]) == 0
    table = store.load_tables(str(root))["ablation"]
    assert table["title"] == "Leave one out" and [r.get("variant") for r in table["records"]] == [None, "without anchors"]
    assert report.main(["--root", str(root)]) == 0
    text = (root / "docs" / "results.md").read_text()
    assert "| ctrl | 0.900 |" in text and "| ctrl [without anchors] | 0.700 |" in text and without.exists()
    assert not list(root.rglob("*.png")) and "figures/" not in text  # --no-figures holds for the rows added later


def test_one_headline_at_a_time(tmp_path):
    root = rendered(tmp_path, [record("ctrl", s, 0.91) for s in range(2)])
    out = tmp_path / "runs"
    assert report.main(["add", "second", str(out), "--root", str(root), "--headline", "--title", "Second"]) == 0
    tables = store.load_tables(str(root))
    assert [name for name, t in tables.items() if t.get("headline")] == ["second"]
    assert report.main(["--root", str(root)]) == 0
    assert "**Second**" in readme_section(root)
    doc = (root / "docs" / "results.md").read_text()
    assert "## Second" in doc and "## main" in doc


@pytest.mark.parametrize("value, shown", [({"mean": 0.9134, "std": 0.0, "n": 1}, "0.913"),
                                          ({"mean": 0.9134, "std": 0.0041, "n": 3}, "0.913 ± 0.004"),
                                          (None, "–")])
def test_numbers_as_the_tables_print_them(value, shown):
    assert report.pm(value) == shown
    assert report.seeds_text([0, 1, 2, 3, 4]) == "seeds 0–4" and report.seeds_text([0, 2]) == "seeds 0 2"


# ---------------------------------------------------------------- a stored table's markers in another doc
GUIDE = "# Guide\n\nBefore.\n\n<!-- table:ablation:begin -->\nedited by hand\n<!-- table:ablation:end -->\n\nAfter.\n"


def between(text: str, name: str) -> str:
    return text.split(f"<!-- table:{name}:begin -->")[1].split(f"<!-- table:{name}:end -->")[0]


def test_a_doc_with_a_tables_markers_gets_its_compact_table(tmp_path):
    """Known numbers: ctrl over seeds 0 1, der of older code without a learning accuracy, and a named
    row of one seed; a doc in a subfolder links results.md from where it is."""
    root = checkout(tmp_path)
    records = [{**record("ctrl", s, 0.90 + 0.02 * s), "learning_accuracy": 0.95 + 0.01 * s} for s in range(2)]
    records += [record("der", s, 0.93, code="0" * 16, memory=500) for s in range(2)]
    assert report.main(["add", "ablation", str(runs_folder(tmp_path / "all", records)), "--root", str(root),
                        "--no-figures"]) == 0
    without = runs_folder(tmp_path / "without", [{**record("ctrl", 0, 0.7), "learning_accuracy": 0.8}])
    assert report.main(["add", "ablation", str(without), "--root", str(root), "--variant", "without anchors"]) == 0
    guide, nested = root / "docs" / "guide.md", root / "docs" / "notes" / "nested.md"
    nested.parent.mkdir()
    guide.write_text(GUIDE)
    nested.write_text(GUIDE)
    assert report.main(["--root", str(root)]) == 0
    guide.write_text(GUIDE)  # as a hand edit leaves it
    assert str(guide) in report.render(str(root), check=True) and guide.read_text() == GUIDE
    assert report.render(str(root)) == [str(guide)]
    assert report.render(str(root), check=True) == []
    text = guide.read_text()
    assert text.startswith("# Guide\n\nBefore.\n\n") and text.endswith("\n\nAfter.\n") and "by hand" not in text
    assert between(text, "ablation").splitlines() == [
        "", "| scenario | row | Last | learning accuracy | forgetting | seeds |", "|---|---|---|---|---|---|",
        "| tiny-2 | ctrl | 0.910 ± 0.010 | 0.955 ± 0.005 | 0.105 ± 0.005 | 0 1 |",
        "| tiny-2 | ctrl [without anchors] [seed 0] | 0.700 | 0.800 | 0.100 | 0 |",
        f"| tiny-2 | der (500 images) [{report.OLDER_CODE}] | 0.930 ± 0.000 | – | 0.105 ± 0.005 | 0 1 |", "",
        "Rendered by `ctrl-bench report` from `results/ablation.json`; its commands are in [results.md](results.md)."]
    assert "its commands are in [results.md](../results.md).\n" in between(nested.read_text(), "ablation")
    doc = (root / "docs" / "results.md").read_text()  # rows in the order docs/results.md has them
    assert doc.index("| ctrl |") < doc.index("| ctrl [without anchors] [seed 0] |") < doc.index("| der (500 images)")
    assert "<!-- table:" not in doc


def test_an_ablation_with_a_baseline_shows_each_rows_paired_change(tmp_path):
    """Known numbers: the baseline over seeds 0 1 2 in two scenarios; "without A" over all three seeds of
    the first (paired: the change is the mean of the seed-by-seed changes) and seed 0 of the second; "without
    B" hurts less, so its line comes second. A baseline that is no row is refused."""
    root = checkout(tmp_path)

    def rows(last, scenario="tiny-2", seeds=range(3)):
        return [{**record("ctrl", s, last[s]), "scenario": scenario, "learning_accuracy": 0.9,
                 "forgetting": 0.1 + 0.01 * s} for s in seeds]
    runs = {"whole": rows([0.90, 0.92, 0.94]) + rows([0.5, 0.6, 0.7], "tiny-5"),
            "without A": rows([0.80, 0.84, 0.81]) + rows([0.4], "tiny-5", [0]),
            "without B": rows([0.91, 0.92, 0.93])}
    refused = runs_folder(tmp_path / "refused", runs["without A"])
    assert report.main(["add", "abl", str(refused), "--root", str(root), "--variant", "without A",
                        "--baseline", "whole"]) == 1
    for name, records in runs.items():
        folder = runs_folder(tmp_path / name.replace(" ", "-"), records)
        extra = ["--baseline", "whole", "--no-figures"] if name == "whole" else []
        assert report.main(["add", "abl", str(folder), "--root", str(root), "--variant", name, *extra]) == 0
    (root / "docs" / "guide.md").write_text(GUIDE.replace("ablation", "abl"))
    assert report.main(["--root", str(root)]) == 0
    assert between((root / "docs" / "guide.md").read_text(), "abl").splitlines()[1:6] == [
        "| row | tiny-2 | tiny-5 |", "|---|---|---|",
        "| whole | 0.920 · 0.900 · 0.110 | 0.600 · 0.900 · 0.110 |",
        "| without A | -0.103 · +0.000 · +0.000 | -0.100 · +0.000 · +0.000 (seed 0) |",
        "| without B | +0.000 · +0.000 · +0.000 | – |"]


def test_a_doc_naming_a_table_not_stored_says_so(tmp_path):
    root = checkout(tmp_path)
    doc = root / "docs" / "guide.md"
    doc.write_text(GUIDE.replace("ablation", "later"))
    assert str(doc) in report.render(str(root))
    assert between(doc.read_text(), "later") == "\nNo table `later` is stored yet.\n"
    assert report.render(str(root), check=True) == []


@pytest.mark.parametrize("markers", ["<!-- table:lonely:begin -->\n", "<!-- table:lonely:end -->\n",
                                     "<!-- table:lonely:begin -->\n<!-- table:other:end -->\n",
                                     "<!-- table:lonely:begin -->\n<!-- table:lonely:begin -->\n"])
def test_an_unmatched_table_marker_is_refused(tmp_path, markers, capsys):
    root = checkout(tmp_path)
    (root / "docs" / "guide.md").write_text(f"# Guide\n\n{markers}")
    with pytest.raises(store.StoreError, match=r"docs/guide\.md.*lonely"):
        report.render(str(root), check=True)
    assert report.main(["--root", str(root), "--check"]) == 1
    assert "guide.md" in capsys.readouterr().err
