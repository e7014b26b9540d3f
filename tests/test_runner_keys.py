"""Probe defect 1: every way of importing a package module is traced into the cache key."""

import shutil
from pathlib import Path

import pytest

from embrepro.book import runner as runner_module
from embrepro.book.runner import discover, imported_modules, key_components, key_of, package_modules


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A throw-away ``embrepro`` package with a subpackage, relative imports and aliases."""
    pkg = tmp_path / "embrepro"
    files = {
        "__init__.py": '"""top"""\n',
        "alpha.py": "import numpy\n",
        "beta.py": "def f():\n    from embrepro import gamma as g  # inside a function\n    return g\n",
        "gamma.py": "X = 1\n",
        "delta.py": "import importlib\nmod = importlib.import_module('embrepro.epsilon')\n",
        "epsilon.py": "Y = 2\n",
        "data/__init__.py": "from .corpora import load\nfrom . import benchmarks\n",
        "data/corpora.py": "from ..paths import root\ndef load():\n    return root\n",
        "data/benchmarks.py": "from embrepro.data.manifest import entries\n",
        "data/manifest.py": "entries = []\n",
        "paths.py": "root = '.'\n",
        "book/__init__.py": "",
        "book/pages.py": "from embrepro import alpha\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    monkeypatch.setattr(runner_module, "PACKAGE_DIR", pkg)
    return pkg


def test_every_import_form_is_traced(fake_package):
    assert imported_modules("from embrepro import alpha as a") == {"embrepro", "embrepro.alpha"}
    assert imported_modules("import embrepro.alpha as a") == {"embrepro.alpha"}
    assert imported_modules("from embrepro.data.corpora import load") == {"embrepro.data.corpora"}
    assert "embrepro.gamma" in imported_modules(fake_package.joinpath("beta.py").read_text(), "embrepro.beta")
    assert imported_modules(fake_package.joinpath("data/__init__.py").read_text(), "embrepro.data") == {
        "embrepro.data", "embrepro.data.corpora", "embrepro.data.benchmarks"}
    assert imported_modules(fake_package.joinpath("data/corpora.py").read_text(),
                            "embrepro.data.corpora") == {"embrepro.paths"}
    assert imported_modules("from embrepro import nothing_here") == {"embrepro"}


def test_closure_follows_packages_relative_imports_and_parents(fake_package):
    assert set(package_modules("from embrepro import data")) == {
        "embrepro", "embrepro.data", "embrepro.data.corpora", "embrepro.data.benchmarks",
        "embrepro.data.manifest", "embrepro.paths"}
    assert set(package_modules("from embrepro import beta as b")) == {"embrepro", "embrepro.beta", "embrepro.gamma"}
    assert "embrepro.epsilon" in package_modules("import embrepro.delta")
    # a submodule import runs its parent packages' __init__ too
    assert set(package_modules("import embrepro.data.manifest")) >= {"embrepro", "embrepro.data"}
    # a cell with an IPython magic still parses
    assert "embrepro.alpha" in package_modules(runner_module._code_to_parse("%matplotlib inline\nimport embrepro.alpha"))
    # unparsable source: every science module, never the book wing
    everything = package_modules("def broken(:")
    assert "embrepro.epsilon" in everything and not any(m.startswith("embrepro.book") for m in everything)


def _copy_package(tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "src" / "embrepro"
    shutil.copytree(runner_module.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runner_module, "PACKAGE_DIR", copy)
    return copy


@pytest.mark.parametrize("chapter, module", [("muvera", "multivector.py"), ("quantization", "quantization.py")])
def test_editing_a_module_imported_with_an_alias_changes_the_real_chapters_key(chapter, module, tmp_path,
                                                                              monkeypatch):
    spec = discover()[chapter]
    params = spec.resolve("smoke")
    package = _copy_package(tmp_path, monkeypatch)
    before = key_of(key_components(spec, params, {}))
    (package / "book" / "pages.py").write_text((package / "book" / "pages.py").read_text() + "\n# edited\n")
    (package / "book" / "runner.py").write_text((package / "book" / "runner.py").read_text() + "\n# edited\n")
    assert key_of(key_components(spec, params, {})) == before, "book-wing edits must not change chapter keys"
    (package / module).write_text((package / module).read_text() + "\n# edited\n")
    after = key_components(spec, params, {})
    assert key_of(after) != before
    assert f"embrepro.{module[:-3]}" in after["package"]

