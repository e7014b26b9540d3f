"""Online recipe ``git_archive``: re-create a ``git archive <commit> <paths> | gzip -n`` file.

Some mirror files were made as a tar of a few folders of a public GitHub repository at a fixed
commit (``git archive <commit> -- <paths> | gzip -n``). A recipe for such a file::

    {"kind": "git_archive",
     "repo": "https://github.com/OWNER/NAME",
     "commit": "<40 hex digits>",
     "paths": ["data/some/folder", ...],
     "exclude": ["data/some/folder/big.feat", ...]}   # optional

:func:`build_git_archive` fetches only what the archive needs, never the whole repository:

1. ``git init`` in a temporary folder, then ``git fetch --depth 1 --filter=blob:none origin
   <commit>``: the commit and its trees, no file contents (a partial clone).
2. The blobs of the archived files are listed from the trees (``git diff-tree`` against the empty
   tree, with the same pathspec that ``git archive`` gets, so exclusions match exactly) and fetched
   in ONE request (``git fetch --stdin`` with their object ids, as git's own lazy fetch does).
3. ``git archive --worktree-attributes <commit> -- <paths> :(exclude)<path>...`` piped into
   ``gzip -n``. ``--worktree-attributes`` keeps ``git archive`` from loading the whole tree into
   an index, which in a partial clone would fetch every other blob of the repository. Any
   ``.gitattributes`` files of the tree are written into the (otherwise empty) work tree first, so
   that attributes apply as they would from the index; git's user and system configuration is
   ignored for this step (``tar.umask``, ``core.autocrlf`` and filters could change the bytes).

The bytes are those of ``git archive`` (its tar format: a pax header with the commit id, the
commit time as every file's time, modes 0775/0664, owner root) and of GNU ``gzip -n`` at its
default level; the dispatcher checks the result's sha256 against the manifest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from embrepro.derived import DataError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # sha1 of the empty tree, known to git

# Fixed settings for the archive step, so that no user or system setting changes the bytes.
_ARCHIVE_CONFIG = [
    "-c", "tar.umask=0002",
    "-c", "core.autocrlf=false",
    "-c", "core.eol=lf",
    "-c", f"core.attributesFile={os.devnull}",
    "-c", "core.bigFileThreshold=512m",
]


def _check_recipe(recipe: dict) -> tuple[str, str, list[str], list[str]]:
    repo = recipe.get("repo")
    commit = recipe.get("commit")
    paths = recipe.get("paths")
    exclude = recipe.get("exclude") or []
    if not isinstance(repo, str) or not repo:
        raise DataError(f"git_archive recipe has no 'repo' URL: {recipe!r}")
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise DataError(f"git_archive recipe needs 'commit' as 40 lowercase hex digits, got {commit!r}")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise DataError(f"git_archive recipe needs 'paths', a non-empty list of paths, got {paths!r}")
    if not isinstance(exclude, list) or not all(isinstance(p, str) and p for p in exclude):
        raise DataError(f"git_archive recipe's 'exclude' must be a list of paths, got {exclude!r}")
    for p in paths + exclude:
        if p.startswith(":"):
            raise DataError(f"git_archive recipe path {p!r}: give plain paths (no ':(magic)'); "
                            "use 'exclude' to leave paths out")
    return repo, commit, list(paths), list(exclude)


def _pathspec(paths: list[str], exclude: list[str]) -> list[str]:
    return ["--", *paths, *(f":(exclude){p}" for p in exclude)]


def _pack_bytes(git_dir: Path) -> int:
    pack = git_dir / "objects" / "pack"
    return sum(f.stat().st_size for f in pack.glob("*.pack")) if pack.is_dir() else 0


def build_git_archive(recipe: dict, out: Path, *, fetch: Callable | None = None,
                      download: Callable | None = None, log: Callable[[str], None] = print) -> None:
    """Write ``git archive <commit> -- <paths> [:(exclude)...] | gzip -n`` of ``recipe['repo']`` to
    ``out``, fetching only the commit's trees and the archived files' blobs (see the module
    docstring). ``fetch`` and ``download`` are not used (git does the transfer). Raises
    :class:`DataError` when git or gzip is missing, the repository or commit cannot be fetched, a
    path is not in the commit, or the archive step fails."""
    repo, commit, paths, exclude = _check_recipe(recipe)
    out = Path(out)
    git = shutil.which("git")
    if git is None:
        raise DataError(f"cannot make the archive: the 'git' program is not installed; "
                        "install git (e.g. 'apt-get install git') and run again")
    gzip = shutil.which("gzip")
    if gzip is None:
        raise DataError(f"cannot make the archive: the 'gzip' program is not installed; "
                        "install GNU gzip and run again")

    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    for name in ("GZIP", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                 "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES"):
        env.pop(name, None)
    pathspec = _pathspec(paths, exclude)

    with tempfile.TemporaryDirectory(prefix=".git-archive-", dir=out.parent) as tmp:
        work = Path(tmp) / "repo"
        work.mkdir()
        git_dir = work / ".git"

        def run(args: list[str], what: str, *, stdin: str | None = None) -> str:
            # No repacking in the throw-away clone; give up on a stalled transfer (< 1 kB/s
            # for 2 minutes) instead of hanging.
            proc = subprocess.run([git, "-c", "gc.auto=0", "-c", "maintenance.auto=false",
                                   "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=120",
                                   *args], cwd=work, env=env, input=stdin,
                                  capture_output=True, encoding="utf-8",
                                  errors="surrogateescape")
            if proc.returncode != 0:
                detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
                raise DataError(
                    f"cannot make the archive: {what} failed: "
                    + " | ".join(detail) + f". Repository {repo} @ {commit}; check the network "
                    "and that the repository and commit still exist, then run again.")
            return proc.stdout

        started = time.monotonic()
        run(["init", "-q"], "creating a temporary git repository")
        run(["remote", "add", "origin", repo], "setting the remote")
        log(f"git archive: fetching commit {commit[:12]} of {repo} (trees only, no file contents)")
        run(["-c", "fetch.negotiationAlgorithm=noop", "fetch", "-q", "--no-tags", "--depth", "1",
             "--filter=blob:none", "--no-write-fetch-head", "origin", commit],
            f"fetching commit {commit}")
        trees_bytes = _pack_bytes(git_dir)
        if run(["cat-file", "-t", commit], "reading the fetched commit").strip() != "commit":
            raise DataError(f"cannot make the archive: {commit} in {repo} is not a commit")

        # The archived files: the same pathspec as git archive, read from the trees only.
        listing = run(["diff-tree", "-r", "-z", "--no-renames", "--raw", EMPTY_TREE, commit,
                       *pathspec], "listing the archived files")
        fields = listing.split("\0")
        blobs: set[str] = set()
        files = 0
        for i in range(0, len(fields) - 1, 2):
            meta = fields[i].split()
            if len(meta) >= 4 and meta[1] != "160000":  # submodules have no blob
                blobs.add(meta[3])
                files += 1
        if files == 0:
            raise DataError(f"cannot make the archive: no file of {repo} @ {commit} matches paths "
                            f"{paths} (exclude {exclude}); fix the recipe")
        attr_files = [p for p in run(["ls-tree", "-r", "-z", "--name-only", commit],
                                     "listing the tree").split("\0")
                      if p == ".gitattributes" or p.endswith("/.gitattributes")]
        attr_blobs = run(["rev-parse", *(f"{commit}:{p}" for p in attr_files)],
                         "finding .gitattributes").split() if attr_files else []

        log(f"git archive: fetching {len(blobs | set(attr_blobs))} file contents "
            f"({files} files) in one batch")
        run(["-c", "fetch.negotiationAlgorithm=noop", "fetch", "-q", "--no-tags",
             "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none", "origin",
             "--stdin"], "fetching the file contents",
            stdin="".join(f"{b}\n" for b in sorted(blobs | set(attr_blobs))))
        fetched = _pack_bytes(git_dir)
        log(f"git archive: fetched {fetched / 1e6:.1f} MB ({trees_bytes / 1e6:.1f} MB trees) "
            f"in {time.monotonic() - started:.0f} s")

        # From here on nothing may be fetched: a missing blob is an error, not a download.
        # (git sets remote.origin.promisor; older versions also extensions.partialClone).
        for key in ("remote.origin.promisor", "extensions.partialclone"):
            subprocess.run([git, "config", "--unset-all", key], cwd=work, env=env,
                           capture_output=True)
        check = run(["cat-file", "--batch-check"], "checking the fetched contents",
                    stdin="".join(f"{b}\n" for b in sorted(blobs | set(attr_blobs))))
        missing = [line.split()[0] for line in check.splitlines() if line.endswith(" missing")]
        if missing:
            raise DataError(f"cannot make the archive: {len(missing)} file contents did not arrive "
                            f"from {repo} (e.g. {missing[0]}); run again")
        for p in attr_files:  # attributes apply as from the index (see the module docstring)
            target = work / p
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(subprocess.run([git, "cat-file", "blob", f"{commit}:{p}"], cwd=work,
                                              env=env, capture_output=True, check=True).stdout)

        log(f"git archive: writing git archive | gzip -n")
        isolated_env = dict(env, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
        with open(out, "wb") as sink, tempfile.TemporaryFile() as errors:
            archive = subprocess.Popen(
                [git, *_ARCHIVE_CONFIG, "archive", "--format=tar", "--worktree-attributes",
                 commit, *pathspec], cwd=work, env=isolated_env,
                stdout=subprocess.PIPE, stderr=errors)
            packer = subprocess.Popen([gzip, "-n"], stdin=archive.stdout, stdout=sink,
                                      stderr=subprocess.PIPE, env=env)
            archive.stdout.close()
            packer_err = packer.communicate()[1]
            archive.wait()
            errors.seek(0)
            archive_err = errors.read()
        if archive.returncode != 0 or archive_err.strip():
            out.unlink(missing_ok=True)
            raise DataError(f"cannot make the archive: git archive of {repo} @ {commit} failed: "
                            f"{archive_err.decode(errors='replace').strip()[-500:]}")
        if packer.returncode != 0:
            out.unlink(missing_ok=True)
            raise DataError(f"cannot make the archive: gzip -n failed: "
                            f"{packer_err.decode(errors='replace').strip()[-500:]}")
        log(f"git archive: written, {out.stat().st_size:,} bytes, "
            f"{time.monotonic() - started:.0f} s in all")
