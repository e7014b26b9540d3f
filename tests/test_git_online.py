"""The ``git_archive`` online recipe (embrepro.book.git_online): no network, local git repositories.

* A tiny repository with nested folders, committed at a fixed date and served over ``file://``:
  the builder's output equals ``git archive ... | gzip -n`` made directly, excluded paths are
  absent, ``.gitattributes`` (export-ignore) applies as in a plain ``git archive``, and an unknown
  commit, a missing git or a path that matches nothing give a clear DataError.
* One full byte-exact check against the mirror (20 Newsgroups): a repository is rebuilt from the
  mirror's tar (``git fast-import``), its two folders' tree ids must be those recorded for the
  GitHub repository (so its content is the repository's), the builder runs against it, and its
  output with the commit id put back (the only byte that names the commit is the pax comment) must
  have the manifest's sha256. Skipped where the mirror is absent.
"""

from __future__ import annotations

import gzip as gziplib
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from embrepro.book import git_online
from embrepro.book.git_online import build_git_archive
from embrepro.derived import DataError
from embrepro.paths import mirror_dirs, project_root

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("gzip") is None,
                                reason="needs the git and gzip programs")

FIXED_DATE = "1563000000 +0200"

# The recipes reported for the manifest (used when the manifest does not hold them yet).
RECIPES = {
    ("20newsgroups", "20news-bydate.tar.gz"): {
        "kind": "git_archive",
        "repo": "https://github.com/yao8839836/text_gcn",
        "commit": "962223652e9bb164ac2d83cd09fc7b8845ce860b",
        "paths": ["data/20ng/20news-bydate-train", "data/20ng/20news-bydate-test"],
    },
    ("imdb", "aclImdb_train_test.tar.gz"): {
        "kind": "git_archive",
        "repo": "https://github.com/steven-66/NaiveBayes",
        "commit": "796126bc21f7ef431e10864abe854867aa9b64cb",
        "paths": ["data/aclImdb"],
        "exclude": ["data/aclImdb/.DS_Store", "data/aclImdb/train/.DS_Store",
                    "data/aclImdb/test/labeledBow.feat", "data/aclImdb/train/labeledBow.feat",
                    "data/aclImdb/train/unsupBow.feat", "data/aclImdb/train/urls_unsup.txt"],
    },
}


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = dict(os.environ, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.org",
               GIT_COMMITTER_NAME="A", GIT_COMMITTER_EMAIL="a@example.org",
               GIT_AUTHOR_DATE=FIXED_DATE, GIT_COMMITTER_DATE=FIXED_DATE,
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return subprocess.run(["git", *args], cwd=cwd, env=env, input=stdin, check=True,
                          capture_output=True).stdout


def serve(repo: Path) -> str:
    """Let clients of ``repo`` fetch with a filter and by object id, as GitHub does."""
    git(repo, "config", "uploadpack.allowFilter", "true")
    git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    return repo.resolve().as_uri()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str]:
    """A small repository: nested folders, an executable, a file to exclude, an export-ignore."""
    repo = tmp_path_factory.mktemp("tiny") / "src"
    files = {
        "README.md": "top\n",
        "data/set/train/a.txt": "alpha\n",
        "data/set/train/b.txt": "beta\n" * 50,
        "data/set/train/deep/c.txt": "gamma\n",
        "data/set/test/d.txt": "delta\n",
        "data/set/test/skip.feat": "big features\n",
        "data/set/train/skip.feat": "more features\n",
        "data/set/.gitattributes": "hidden.txt export-ignore\n",
        "data/set/hidden.txt": "not in archives\n",
        "data/set/run.sh": "#!/bin/sh\necho hi\n",
        "data/other/e.txt": "epsilon\n",
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    (repo / "data/set/run.sh").chmod(0o755)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny")
    commit = git(repo, "rev-parse", "HEAD").decode().strip()
    return repo, commit


def direct(repo: Path, commit: str, pathspec: list[str]) -> bytes:
    tar = git(repo, "archive", commit, "--", *pathspec)
    return subprocess.run(["gzip", "-n"], input=tar, capture_output=True, check=True).stdout


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


def test_matches_git_archive_and_excludes(tiny, tmp_path):
    repo, commit = tiny
    lines = []
    recipe = {"kind": "git_archive", "repo": serve(repo), "commit": commit,
              "paths": ["data/set"], "exclude": ["data/set/test/skip.feat", "data/set/train/skip.feat"]}
    out = tmp_path / "set.tar.gz"
    build_git_archive(recipe, out, fetch=None, download=None, log=lines.append)
    made = out.read_bytes()
    expected = direct(repo, commit, ["data/set", ":(exclude)data/set/test/skip.feat",
                                     ":(exclude)data/set/train/skip.feat"])
    assert made == expected
    got = names(made)
    assert "data/set/train/deep/c.txt" in got and "data/set/run.sh" in got
    assert not [n for n in got if n.endswith(".feat")]
    assert "data/set/hidden.txt" not in got  # export-ignore applies, as in git archive
    assert "data/other/e.txt" not in got and "README.md" not in got
    assert any("fetching" in line for line in lines) and any("written" in line for line in lines)
    assert not list(tmp_path.glob(".git-archive-*"))  # the temporary clone is gone


def test_several_paths(tiny, tmp_path):
    repo, commit = tiny
    recipe = {"kind": "git_archive", "repo": serve(repo), "commit": commit,
              "paths": ["data/set/train", "data/other"]}
    out = tmp_path / "two.tar.gz"
    build_git_archive(recipe, out, fetch=None, download=None, log=lambda line: None)
    assert out.read_bytes() == direct(repo, commit, ["data/set/train", "data/other"])


def test_unknown_commit(tiny, tmp_path):
    repo, _ = tiny
    recipe = {"kind": "git_archive", "repo": serve(repo), "commit": "1" * 40, "paths": ["data"]}
    with pytest.raises(DataError, match=r"fetching commit 1{40}.*check the network"):
        build_git_archive(recipe, tmp_path / "x.tar.gz", fetch=None, download=None,
                          log=lambda line: None)
    assert not (tmp_path / "x.tar.gz").exists()


def test_unknown_repository_and_path(tiny, tmp_path):
    repo, commit = tiny
    missing = {"kind": "git_archive", "repo": (tmp_path / "nowhere").as_uri(), "commit": commit,
               "paths": ["data"]}
    with pytest.raises(DataError, match="nowhere"):
        build_git_archive(missing, tmp_path / "x.tar.gz", fetch=None, download=None,
                          log=lambda line: None)
    no_path = {"kind": "git_archive", "repo": serve(repo), "commit": commit, "paths": ["no/such"]}
    with pytest.raises(DataError, match="no file .* matches paths"):
        build_git_archive(no_path, tmp_path / "x.tar.gz", fetch=None, download=None,
                          log=lambda line: None)


def test_missing_git_and_bad_recipe(monkeypatch, tmp_path):
    recipe = {"kind": "git_archive", "repo": "https://example.org/r", "commit": "a" * 40,
              "paths": ["data"]}
    with pytest.raises(DataError, match="bad commit|40 lowercase hex"):
        build_git_archive(dict(recipe, commit="abc"), tmp_path / "x", log=lambda line: None)
    with pytest.raises(DataError, match="'paths'"):
        build_git_archive(dict(recipe, paths=[]), tmp_path / "x", log=lambda line: None)
    monkeypatch.setattr(git_online.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="'git' program is not installed"):
        build_git_archive(recipe, tmp_path / "x", log=lambda line: None)


def recipe_for(dataset: str, filename: str) -> dict:
    raw = yaml.safe_load((project_root() / "data" / "manifest.yml").read_text(encoding="utf-8"))
    entry = raw["datasets"][dataset]["files"][filename]
    return entry.get("recipe") or RECIPES[(dataset, filename)]


def test_20newsgroups_byte_exact_from_mirror(tmp_path):
    """Rebuild the text_gcn folders from the mirror's tar, check their git tree ids, run the
    builder and compare with the manifest's sha256 (commit id put back)."""
    found = [d / "20newsgroups" / "20news-bydate.tar.gz" for d in mirror_dirs()]
    found = [p for p in found if p.is_file()]
    if not found:
        pytest.skip("the data mirror (EMBREPRO_DATA or /work/shared/data) is absent")
    raw = yaml.safe_load((project_root() / "data" / "manifest.yml").read_text(encoding="utf-8"))
    entry = raw["datasets"]["20newsgroups"]["files"]["20news-bydate.tar.gz"]
    recipe = recipe_for("20newsgroups", "20news-bydate.tar.gz")

    # A repository holding exactly the tar's files (modes and commit time from the tar).
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "core.compression", "0")  # stored, not deflated: faster here and when served
    stream = io.BytesIO()
    mtime = None
    with tarfile.open(found[0], mode="r:gz") as tar:
        stream.write(b"commit refs/heads/main\n")
        for member in tar:
            if member.isdir():
                continue
            assert member.isfile(), member.name
            if mtime is None:
                mtime = int(member.mtime)
                stream.write(b"committer A <a@example.org> %d +0000\ndata 6\nmirror\n" % mtime)
            body = tar.extractfile(member).read()
            mode = b"100755" if member.mode & 0o100 else b"100644"
            stream.write(b"M %s inline %s\ndata %d\n%s\n" % (mode, member.name.encode(), len(body), body))
    git(repo, "fast-import", "--quiet", stdin=stream.getvalue())
    commit = git(repo, "rev-parse", "main").decode().strip()
    for folder, tree in (("data/20ng/20news-bydate-train", "2e29dad1a60a75a45f8c1be4a928c5b166502f43"),
                         ("data/20ng/20news-bydate-test", "cff6b69b7b65dad74216c63430208d9a730c28b1")):
        assert tree in entry["note"]
        assert git(repo, "rev-parse", f"{commit}:{folder}").decode().strip() == tree

    git(repo, "config", "pack.window", "0")  # no delta search when serving: faster, same blobs
    out = tmp_path / "20news-bydate.tar.gz"
    build_git_archive(dict(recipe, repo=serve(repo), commit=commit), out, fetch=None,
                      download=None, log=lambda line: None)
    tar_bytes = gziplib.decompress(out.read_bytes())
    assert tar_bytes[512:600].count(b"comment=" + commit.encode()) == 1
    tar_bytes = tar_bytes.replace(b"comment=" + commit.encode(), b"comment=" + recipe["commit"].encode(), 1)
    packed = subprocess.run(["gzip", "-n"], input=tar_bytes, capture_output=True, check=True).stdout
    assert len(packed) == entry["size"]
    assert hashlib.sha256(packed).hexdigest() == entry["sha256"]
