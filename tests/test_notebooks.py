"""Every chapter notebook meets the structural part of the chapter contract."""

import json

import pytest

from embrepro.data import manifest
from embrepro.book.runner import discover

CHAPTERS = discover()
SECTIONS = ["## Overview", "## Prerequisites", "## Parameters", "## Claims under test", "## Data",
            "## Verdict", "## Cost", "## Summary and what's next", "## Exercises", "## References"]


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_notebook_is_committed_without_outputs(name):
    nb = json.loads(CHAPTERS[name].notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, name


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_notebook_has_the_contract_sections_in_order(name):
    nb = json.loads(CHAPTERS[name].notebook.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert markdown.lstrip().startswith("# "), "one # title first"
    positions = [markdown.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions), "sections out of order"
    assert "{cite:p}" in markdown and "{bibliography}" in markdown
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "chapter.decide(" in code, "verdicts are decided in code"
    assert "open_chapter(" in code and "chapter.close()" in code, "open and close the chapter with the kit"
    assert "recorded_runs(" in code, "the Prerequisites show the recorded runs"
    assert "getsource" not in code, "show package code with a literalinclude :pyobject: directive"
    assert "EMBREPRO_THREADS" not in code, "use embrepro.paths.threads()"
    for old in ("verdict_greater", "verdict_at_least", "verdict_interval", "verdict_within", "verdict_ratio"):
        assert old not in code, f"{old} is gone: state a rule (embrepro.claims) and decide with an interval"
    assert "/work/" not in code and "shared/data" not in code, "data must come through embrepro.data"


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_spec_declares_known_data_and_dependencies(name):
    spec = CHAPTERS[name]
    for entry in spec.data:
        manifest().dataset(entry if entry in manifest().datasets else entry.split("/")[0])  # "beir/scifact" is one data set
    for param, target in spec.needs.items():
        dep, artefact = target.split("/", 1)
        assert param in spec.defaults, f"{name} needs {target} as {param}, which is not a parameter"
        assert artefact in CHAPTERS[dep].artefacts, f"{dep} does not declare {artefact}"
    assert spec.profiles["smoke"], "a smoke profile must shrink the work"


def test_every_chapter_is_in_the_table_of_contents():
    from embrepro.paths import project_root

    toc = (project_root() / "_toc.yml").read_text()
    missing = [name for name in CHAPTERS if f"book/chapters/{name}\n" not in toc]
    assert not missing, f"add these chapters to _toc.yml: {missing}"


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_links_to_other_chapters_name_them_as_the_book_places_them(name):
    # The book copies every chapter into one folder (book/chapters), so a link to another chapter is
    # its bare file name; "../word_vectors/x.ipynb" breaks the build there.
    import re
    nb = json.loads(CHAPTERS[name].notebook.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for target in re.findall(r"\]\(([^)#\s]+\.ipynb)(?:#[^)]*)?\)", markdown):
        assert "/" not in target, f"{name}: link to {target}; write {target.rsplit('/', 1)[-1]}"
        assert target[:-len(".ipynb")] in CHAPTERS, f"{name}: link to {target}, which is not a chapter"
