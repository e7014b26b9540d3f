"""The command line: ``python -m embrepro`` and ``--version``."""

import re
import subprocess
import sys

from embrepro.book import cli


def test_version_names_the_package_and_the_data_manifest(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"embrepro \d+\.\d+\.\d+", out[0])
    assert re.fullmatch(r"data manifest [0-9a-f]{12} \(\d+ data sets, \d+ files; data/manifest.yml\)", out[1])


def test_python_dash_m_runs_the_same_command():
    module = subprocess.run([sys.executable, "-m", "embrepro", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == cli.version_text() + "\n"
    bad = subprocess.run([sys.executable, "-m", "embrepro", "run", "--profile", "huge"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'huge'" in bad.stderr
