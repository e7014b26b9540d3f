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


PRODUCER_BODY = """
from embrepro.claims import Chapter, Direction
from embrepro.stats import seed_difference
if fail:
    raise RuntimeError("asked to fail")
chapter = Chapter("producer", profile)
chapter.claim("bigger", "x beats zero", rule=Direction(), paper_value="1", evidence="V", source="test")
chapter.decide("bigger", seed_difference([x, x + 0.1, x + 0.2], [0.0, 0.1, 0.2]), measured=str(x), why="test")
chapter.metric("x", x)
open("artefact.txt", "w").write(f"x={x}")
chapter.save()
"""

CONSUMER_BODY = """
from embrepro.claims import Chapter
text = open(upstream).read()
chapter = Chapter("consumer", profile)
chapter.metric("upstream_x", float(text.split("=")[1]))
chapter.save()
"""


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    """Two chapters (consumer needs producer's artefact) in a temporary notebooks/ folder."""
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
