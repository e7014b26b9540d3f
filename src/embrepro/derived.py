"""Derived files: what the book computes from its data and keeps in the cache, checked on every read.

A derived file is anything under the cache that the book can compute again from its inputs: the
tokenised Gutenberg corpus and its cuts, the IMDB token file, the MSR analogy file, the WordNet
noun closure, one embedding-cache ``.npy`` per list of encoded texts. :func:`ensure` gives a
caller a valid one, building it when needed:

* **Atomic writes.** The builder writes a temporary file in the same folder
  (``.<name>.tmp-<pid>-<12 hex digits><suffix>``); the file is then renamed into place, and after it its
  record. A reader never sees a half-written file under the real name, and a run killed mid-write
  leaves only a temporary file, removed by the next build of that name once its process is gone.
* **A record beside each file**, ``<name>.record.json``::

      {"format": 1, "file": "gutenberg-v2-50000.txt", "size": 301544,
       "sha256": "<64 hex digits of the file>",
       "inputs": "<the caller's key of everything the content depends on>",
       "info": {"tokens": 50007, "sentences": 4123}}

  ``inputs`` is a string the caller builds from the format version, the sha256 of the source
  files and the parameters; ``info`` is small JSON the builder returns (a corpus's size, its
  per-book index), so that a reader need not derive it again.
* **Checked on read.** A file is reused only when its record exists, names the same inputs, and
  the file has the recorded size and sha256 (hashes are remembered per process while a file's
  size and modification time stay put). Anything else (missing, no record, other inputs,
  truncated, altered) is rebuilt; a damaged file is reported in one log line
  (``logging.getLogger("embrepro.derived")``, level WARNING) naming the file and what is wrong.
* **A clear error where it cannot be rebuilt.** When the builder fails or the folder cannot be
  written, :class:`DataError` names the damaged file (never its source or another cache file),
  what is wrong with it and the remedy: delete it (and its record), make the folder writable,
  or run the command that rebuilds it.

:class:`DataError` and :func:`sha256_file` live here, the lowest layer that touches files, and are
re-exported by :mod:`embrepro.data` (``from embrepro.data import DataError``), which builds on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RECORD_FORMAT = 1
RECORD_SUFFIX = ".record.json"

log = logging.getLogger("embrepro.derived")


class DataError(RuntimeError):
    """A data file is missing, cannot be downloaded, does not match its sha256, or a derived file
    is damaged and cannot be rebuilt. The message names the file and what to do."""


_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """The sha256 of a file (hex), remembered for this process while its size and mtime stay put."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


@dataclass(frozen=True)
class DerivedFile:
    """A derived file that was checked against its record: path, size, sha256, inputs, info."""

    path: Path
    size: int
    sha256: str
    inputs: str
    info: dict = field(default_factory=dict)


def record_path(path: Path) -> Path:
    """Where the record of ``path`` is kept: ``<name>.record.json`` in the same folder."""
    return path.with_name(path.name + RECORD_SUFFIX)


def inputs_key(*parts: object) -> str:
    """A short key (32 hex digits) of the parts that a derived file's content depends on."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def problem(path: Path, inputs: str) -> str | None:
    """What is wrong with the derived file ``path`` for these inputs, or None when it is valid.

    The answer is a short phrase for a log line or an error ("missing", "truncated: 10 of
    2,048 bytes", ...). Only "missing" means there was nothing to damage.
    """
    if not path.exists():
        return "missing"
    record = _read_record(path)
    if isinstance(record, str):
        return record
    if record.inputs != inputs:
        return "built from other inputs"
    size = path.stat().st_size
    if size != record.size:
        return f"{'truncated' if size < record.size else 'grown'}: {size:,} of {record.size:,} bytes"
    if sha256_file(path) != record.sha256:
        return f"altered: its sha256 is not the recorded {record.sha256[:12]}..."
    return None


def verify(path: Path, inputs: str, remedy: str) -> DerivedFile:
    """The record of a derived file that must already be valid; otherwise a :class:`DataError`
    naming ``path``, what is wrong, and ``remedy`` (for callers that cannot rebuild it)."""
    path = Path(path)
    wrong = problem(path, inputs)
    if wrong is not None:
        raise DataError(f"The derived file {path} is {wrong}. {remedy}")
    return _read_record(path)


def ensure(path: Path, inputs: str, build: Callable[[Path], dict | None], *,
           remedy: str = "") -> DerivedFile:
    """A valid derived file at ``path`` for ``inputs``, reused or (re)built with ``build``.

    ``build(tmp)`` writes the content to ``tmp`` (a path in the same folder with the same suffix,
    so that ``np.save``/``np.savez`` keep the name) and returns the record's ``info`` (or None).
    ``remedy`` is added to the error when a damaged file cannot be rebuilt, e.g. "Run
    `embrepro run word2vec` to rebuild it."
    """
    path = Path(path)
    wrong = problem(path, inputs)
    if wrong is None:
        return _read_record(path)
    damaged = wrong not in ("missing", "built from other inputs")
    if damaged:
        log.warning("derived file %s is %s: rebuilding it", path, wrong)
    else:
        log.info("derived file %s is %s: building it", path, wrong)
    try:
        return _build(path, inputs, build)
    except DataError as exc:
        if not damaged:
            raise
        raise DataError(_cannot_rebuild(path, wrong, exc, remedy)) from exc
    except OSError as exc:
        raise DataError(_cannot_rebuild(path, wrong, exc, remedy)) from exc


def write_text(path: Path, inputs: str, text: str, info: dict | None = None) -> DerivedFile:
    """Write ``text`` (UTF-8) as the derived file ``path`` with its record, atomically."""
    def build(tmp: Path) -> dict | None:
        tmp.write_text(text, encoding="utf-8")
        return info

    return _build(Path(path), inputs, build)


def _cannot_rebuild(path: Path, wrong: str, exc: BaseException, remedy: str) -> str:
    state = "missing" if wrong == "missing" else f"damaged ({wrong})"
    return (f"The derived file {path} is {state} and could not be rebuilt: {exc}\n"
            f"Delete {path} and {record_path(path).name} beside it, make sure {path.parent} is "
            f"writable, and run again. {remedy}").rstrip()


def _read_record(path: Path) -> DerivedFile | str:
    """The record of ``path`` as a :class:`DerivedFile`, or a phrase saying why there is none."""
    try:
        raw = json.loads(record_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "without a record"
    except (OSError, ValueError) as exc:
        return f"recorded in an unreadable {record_path(path).name} ({exc.__class__.__name__})"
    if not isinstance(raw, dict) or raw.get("format") != RECORD_FORMAT:
        return f"recorded in an unknown format ({record_path(path).name})"
    try:
        return DerivedFile(path, int(raw["size"]), str(raw["sha256"]), str(raw["inputs"]), dict(raw.get("info") or {}))
    except (KeyError, TypeError, ValueError):
        return f"recorded in an incomplete {record_path(path).name}"


def _temporary(path: Path, suffix: str) -> Path:
    """A fresh name beside ``path`` (the builder creates the file, with the usual permissions)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}{suffix}")


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` left by processes that no longer exist."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name[len(f".{path.name}.tmp-"):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (temporaries of dead processes may be removed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _build(path: Path, inputs: str, build: Callable[[Path], dict | None]) -> DerivedFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = _temporary(path, path.suffix)
    tmp_record = _temporary(path, RECORD_SUFFIX)
    try:
        info = build(tmp) or {}
        size, digest = tmp.stat().st_size, sha256_file(tmp)
        record = {"format": RECORD_FORMAT, "file": path.name, "size": size, "sha256": digest,
                  "inputs": inputs, "info": info}
        tmp_record.write_text(json.dumps(record, indent=1), encoding="utf-8")
        written = tmp.stat()
        os.replace(tmp, path)
        os.replace(tmp_record, record_path(path))
        # a rename keeps size and mtime: remember the hash under the real name
        _HASHES[(str(path.resolve()), written.st_size, written.st_mtime_ns)] = digest
    finally:
        tmp.unlink(missing_ok=True)
        tmp_record.unlink(missing_ok=True)
    return DerivedFile(path, size, digest, inputs, info)
