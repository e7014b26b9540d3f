"""Shared fixtures: a throw-away project with tiny chapters, and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import nbformat
import pytest


def write_chapter(folder: Path, name: str, parameters: str, body: str, spec: str) -> Path:
    """A minimal chapter: a notebook with a parameters cell and a body, and its runner spec."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    (folder / f"{name}.yml").write_text(spec)
    return folder / f"{name}.ipynb"


def save_cell(chapter: str, metrics: str, claims: str = "[]") -> str:
    """Notebook code that writes a format-2 ``chapter-result.json`` by hand (no chapter kit),
    with ``metrics`` and ``claims`` given as Python expressions evaluated in the notebook."""
    return f"""
import json, resource
record = {{"format": 2, "chapter": "{chapter}", "profile": profile, "device": "cpu",
          "claims": {claims}, "checks": [], "metrics": {metrics}, "timings": {{"wall_s": 0.01}},
          "runtime_s": 0.01, "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
with open("chapter-result.json", "w") as handle:
    json.dump(record, handle)
"""


def claim_code(ident: str, statement: str, measured: str, outcome: str, kind: str = "direction") -> str:
    """A claim in the chapter-result.json layout, as a Python expression."""
    return (f'{{"id": "{ident}", "statement": "{statement}", "kind": "{kind}", "rule": "x > 0", '
            f'"paper_value": "1", "evidence": "V", "source": "test", "preconditions": [], '
            f'"measured": str({measured}), "estimate": {measured}, "interval": [{measured}, {measured}], '
            f'"outcome": {outcome}, "computed_outcome": {outcome}, "why": "test", "parts": []}}')


PRODUCER_BODY = """
if fail:
    raise RuntimeError("asked to fail")
open("artefact.txt", "w").write(f"x={x}")
""" + save_cell("producer", '{"x": x}',
                "[" + claim_code("bigger", "x beats zero", "x", '"reproduced" if x > 0 else "not reproduced"') + "]")

CONSUMER_BODY = """
text = open(upstream).read()
""" + save_cell("consumer", '{"upstream_x": float(text.split("=")[1])}')


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    """Two chapters (consumer needs producer's artefact) in a temporary notebooks/ folder.

    The chapters write their chapter-result.json by hand, so these tests do not depend on the
    chapter kit; runs go to ``tmp_path / "runs"``."""
    root = tmp_path / "project"
    write_chapter(root / "notebooks" / "part", "producer",
                  'profile = "book"\nx = 1.0\nfail = False\nlabel = "a"\nsizes = [1, 2]',
                  PRODUCER_BODY,
                  "title: Producer\nartefacts: [artefact.txt]\nprofiles:\n  smoke: {x: 2.0}\n")
    write_chapter(root / "notebooks" / "part", "consumer",
                  'profile = "book"\nupstream = ""',
                  CONSUMER_BODY,
                  "title: Consumer\nneeds:\n  upstream: producer/artefact.txt\n")
    monkeypatch.setenv("EMBREPRO_RUNS", str(tmp_path / "runs"))
    return root


@pytest.fixture
def http_folder(tmp_path):
    """Serve a temporary folder on 127.0.0.1; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
