"""Kernels started by the runner talk over Unix socket files in a private folder, not TCP ports.

Two kernels started at about the same time by different processes could be handed the same TCP port
by jupyter_client (it binds port 0, closes it, and the kernel binds it later); one then died with
"Address already in use". This failed a sweep task in CI. Socket files in a folder per run cannot
collide.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest

from embrepro.book.runner import kernel_channels, kernel_environment

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Unix sockets")

PROBE = """
import json, os
from ipykernel.connect import get_connection_info
info = json.loads(get_connection_info())
with open("channels.json", "w") as handle:
    json.dump({"transport": info["transport"], "ip": info["ip"], "pid": os.getpid(),
               "sockets": sorted(os.listdir(os.path.dirname(info["ip"])))}, handle)
"""


def run_probe(folder: str) -> dict:
    import papermill

    work = Path(folder)
    work.mkdir(parents=True, exist_ok=True)
    notebook = work / "probe.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PROBE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)
    with kernel_environment(), kernel_channels() as channels:
        ip = channels["config"]["KernelManager"]["ip"]
        papermill.execute_notebook(str(notebook), str(work / "out.ipynb"), cwd=str(work), kernel_name="python3",
                                   progress_bar=False, log_output=False, **channels)
    got = json.loads((work / "channels.json").read_text())
    return {**got, "folder": str(Path(ip).parent)}


def test_the_kernel_uses_socket_files_in_a_private_folder_that_is_removed_after(tmp_path):
    got = run_probe(str(tmp_path / "a"))
    assert got["transport"] == "ipc"
    assert got["ip"] == os.path.join(got["folder"], "kernel")
    assert got["sockets"] == [f"kernel-{port}" for port in range(1, 6)]  # shell, iopub, stdin, control, heartbeat
    assert Path(got["folder"]).name.startswith("embrepro-kernel-") and len(got["ip"]) < 95
    assert not Path(got["folder"]).exists()  # removed after the run


def test_kernels_started_at_once_by_two_processes_get_separate_folders(tmp_path):
    with ProcessPoolExecutor(2) as pool:
        first, second = pool.map(run_probe, [str(tmp_path / "a"), str(tmp_path / "b")])
    assert first["transport"] == second["transport"] == "ipc"
    assert first["folder"] != second["folder"] and first["pid"] != second["pid"]


def test_the_folder_is_removed_when_the_run_fails():
    with pytest.raises(RuntimeError):
        with kernel_channels() as channels:
            folder = Path(channels["config"]["KernelManager"]["ip"]).parent
            assert folder.is_dir()
            raise RuntimeError("the notebook failed")
    assert not folder.exists()


def test_a_long_temporary_folder_is_not_used_for_sockets(tmp_path, monkeypatch):
    long_dir = tmp_path / ("d" * 90)  # socket paths must stay under about 104 bytes
    long_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(long_dir))
    with kernel_channels() as channels:
        ip = channels["config"]["KernelManager"]["ip"]
        assert ip.startswith("/tmp/embrepro-kernel-") and len(ip) < 60
        assert list(long_dir.iterdir()) == []  # the first, too long folder is gone
    assert not Path(ip).parent.exists()
