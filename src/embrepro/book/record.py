"""The run record: one typed, versioned record of one run of a chapter.

Two files carry it. The notebook writes ``chapter-result.json`` (what the chapter stated,
measured and decided; written by ``embrepro.claims``); the runner adds what it knows about the run
(cache key and its components, parameters, artefact hashes, versions, times) and writes the whole
as ``result.json`` in the run folder. ``embrepro record`` copies it under ``results/``. Every
reader goes through :class:`RunRecord`, which validates on the way in and names the file when
something is wrong.

``result.json``, format 2::

    {"format": 2, "chapter": "word2vec", "title": "word2vec: ...", "profile": "book",
     "status": "ok", "device": "cpu",
     "claims": [{"id": "neg_vs_hs", "statement": "...", "kind": "direction", "rule": "...",
                 "paper_value": "59 vs 47", "evidence": "V", "source": "...", "preconditions": [],
                 "measured": "61.2 vs 55.0", "estimate": 6.2, "interval": [2.1, 10.3],
                 "outcome": "reproduced", "computed_outcome": "reproduced", "why": "...",
                 "parts": []}],
     "checks": [{"id": "anchor", "statement": "...", "kind": "anchor", "rule": "...",
                 "expected": "82.0", "measured": "81.7", "outcome": "pass", "source": "..."}],
     "metrics": {"sg_neg5/total": 41.2},          # compared exactly by `embrepro determinism`
     "timings": {"train_s": 12.0},                # wall-clock seconds, speed ratios: not compared
     "runtime_s": 201.3,                          # the runner's wall time for the whole run
     "notebook_runtime_s": 196.0,                 # the chapter's own first-to-last-cell time
     "peak_memory_mb": 1450.2,
     "cache_key": "3f2a...", "key_components": {...},   # see embrepro.book.runner.key_components
     "parameters": {"profile": "book", "seed": 0, ...},
     "artefacts": {"vectors.kv": "<sha256 of the file>"},
     "threads": 2, "precision": "bf16", "cpu_count": 2,    # precision: of the cached MiniLM encodings
     "versions": {"python": "3.11.7", "torch": "2.13.0+cpu"},
     "started": "2026-11-22T06:01:02Z", "finished": "2026-11-22T06:04:23Z"}

Format 1 (``results/`` files recorded before this record existed) is converted on read: claims'
``verdict`` and ``computed_verdict`` become ``outcome`` and ``computed_outcome``, there are no
checks, timings, key components or artefact hashes. A ``chapter-result.json`` without a
``format`` field is read as format 1 in the same way.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

FORMAT = 2
PROFILES = ("smoke", "book", "paper")
RUN_FILE = "result.json"
CHAPTER_FILE = "chapter-result.json"

# the fields chapter-result.json carries (the chapter side), beside "format"
CHAPTER_FIELDS = ("chapter", "profile", "device", "claims", "checks", "metrics", "timings",
                  "runtime_s", "peak_memory_mb")


class RecordError(ValueError):
    """A result file that cannot be read as a run record; the message names the file."""


def _fail(source: str, problem: str):
    raise RecordError(f"{source}: {problem}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _upgrade_format_1(data: dict) -> dict:
    """A format-1 record (or a chapter-result.json without ``format``) in format-2 shape."""
    out = dict(data)
    claims = []
    for claim in data.get("claims", []) or []:
        claim = dict(claim) if isinstance(claim, dict) else claim
        if isinstance(claim, dict):
            if "outcome" not in claim and "verdict" in claim:
                claim["outcome"] = claim.pop("verdict")
            if "computed_outcome" not in claim and "computed_verdict" in claim:
                claim["computed_outcome"] = claim.pop("computed_verdict")
        claims.append(claim)
    out["claims"] = claims
    out.setdefault("checks", [])
    out.setdefault("timings", {})
    out["format"] = FORMAT
    return out


def _check_chapter_side(data: dict, source: str) -> None:
    """Validate the fields the chapter writes; raises :class:`RecordError` naming ``source``."""
    for name in ("chapter", "profile"):
        if not isinstance(data.get(name), str):
            _fail(source, f"{name!r} must be a string, got {data.get(name)!r}")
    if data["profile"] not in PROFILES:
        _fail(source, f"unknown profile {data['profile']!r}")
    for name in ("claims", "checks"):
        items = data.get(name)
        if not isinstance(items, list):
            _fail(source, f"{name!r} must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                _fail(source, f"{name}[{i}] must be an object")
            missing = [k for k in ("id", "outcome") if k not in item]
            if missing:
                _fail(source, f"{name}[{i}] ({item.get('id', '?')}) lacks {', '.join(missing)}")
    for name in ("metrics", "timings"):
        values = data.get(name)
        if not isinstance(values, dict):
            _fail(source, f"{name!r} must be an object of name -> number")
        bad = [k for k, v in values.items() if v is not None and not _number(v)]
        if bad:
            _fail(source, f"{name} that are not numbers: {', '.join(bad)}")
    for name in ("runtime_s", "peak_memory_mb"):
        if not _number(data.get(name)):
            _fail(source, f"{name!r} must be a number, got {data.get(name)!r}")


def read_chapter_result(path: Path) -> dict:
    """The chapter's own ``chapter-result.json`` as a validated dict of :data:`CHAPTER_FIELDS`."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        _fail(source, f"cannot be read as JSON ({exc})")
    if not isinstance(data, dict):
        _fail(source, "must hold a JSON object")
    version = data.get("format", 1)
    if version == 1:
        data = _upgrade_format_1(data)
    elif version != FORMAT:
        _fail(source, f"format {version!r}; this runner reads formats 1 and {FORMAT}")
    data.setdefault("device", "cpu")
    _check_chapter_side(data, source)
    return {name: data[name] for name in CHAPTER_FIELDS}


@dataclass(frozen=True)
class RunRecord:
    """One run of a chapter (see the module docstring for the JSON it reads and writes)."""

    chapter: str
    profile: str
    title: str
    status: str
    device: str
    claims: list
    checks: list
    metrics: dict
    timings: dict
    runtime_s: float
    notebook_runtime_s: float
    peak_memory_mb: float
    cache_key: str
    key_components: dict
    parameters: dict
    artefacts: dict
    threads: int
    precision: str  # of the cached MiniLM encodings (embrepro.precision); "fp32" for runs before it was recorded
    cpu_count: int
    versions: dict
    started: str
    finished: str
    format: int = field(default=FORMAT)

    @classmethod
    def from_json(cls, data, source: str = "<record>", *, upgrade: bool = True) -> "RunRecord":
        """Validate a parsed ``result.json``. Format 1 is converted unless ``upgrade`` is false,
        in which case only the current format is accepted (the cache wants nothing older)."""
        if not isinstance(data, dict):
            _fail(source, "must hold a JSON object")
        version = data.get("format", 1)
        if version == 1 and upgrade:
            data = _upgrade_format_1(data)
            data.setdefault("key_components", {})
            data.setdefault("artefacts", {})
            data.setdefault("title", data.get("chapter", ""))
            data.setdefault("notebook_runtime_s", data.get("runtime_s", float("nan")))
        elif version != FORMAT:
            _fail(source, f"format {version!r}, but this runner writes format {FORMAT}")
        data = {"device": "cpu", "precision": "fp32", **data}  # every encoding was fp32 before precision was recorded
        _check_chapter_side(data, source)
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            _fail(source, f"lacks {', '.join(missing)}")
        if data["status"] != "ok":
            _fail(source, f"status {data['status']!r}, not 'ok'")
        if not isinstance(data["artefacts"], dict) or not all(
                isinstance(v, str) and len(v) == 64 for v in data["artefacts"].values()):
            _fail(source, "'artefacts' must map file names to sha256 hex digests")
        for name in ("key_components", "parameters", "versions"):
            if not isinstance(data[name], dict):
                _fail(source, f"{name!r} must be an object")
        return cls(**{n: data[n] for n in names})

    @classmethod
    def load(cls, path: Path, *, upgrade: bool = True) -> "RunRecord":
        """Read and validate a ``result.json``; :class:`RecordError` names the file."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            _fail(str(path), f"cannot be read as JSON ({exc})")
        return cls.from_json(data, str(path), upgrade=upgrade)

    def to_json(self) -> dict:
        """The record as a JSON-ready dict (the layout of the module docstring)."""
        return asdict(self)

    def save(self, path: Path) -> Path:
        """Write the record atomically (a temporary file renamed into place)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_json(), indent=2, default=_json_default))
        os.replace(tmp, path)
        return path


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def same_number(a, b, rel: float = 1e-9) -> bool:
    """Equal to ``rel`` relative tolerance; NaN equals NaN; None equals only None."""
    if a is None or b is None:
        return a is b
    if not (_number(a) and _number(b)):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0) or a == b


# What is compared of a claim or a check between two runs: its outcomes (and its parts'). Their
# measured text, estimates and intervals may hold timings (a speed ratio, a time budget), which
# differ from run to run on any machine; the numbers behind an outcome are compared as metrics.
COMPARED_FIELDS = ("outcome", "computed_outcome")


def _outcome_differences(label: str, a: dict, b: dict) -> list[str]:
    # A speed or size claim (kind "ratio") is decided by wall-clock timings, which no machine
    # repeats exactly; at the smoke profile they time microseconds of work. Its displayed outcome
    # is compared, its computed one is not; the book profile's verdicts are checked across runs
    # by rerunning it (see the closing notes of issue 7).
    fields = ("outcome",) if a.get("kind") == "ratio" else COMPARED_FIELDS
    lines = [f"{label} {key}: {a.get(key)!r} != {b.get(key)!r}"
             for key in fields if a.get(key) != b.get(key)]
    parts_a, parts_b = a.get("parts") or [], b.get("parts") or []
    if len(parts_a) != len(parts_b):
        lines.append(f"{label}: {len(parts_a)} parts != {len(parts_b)} parts")
    for i, (x, y) in enumerate(zip(parts_a, parts_b)):
        if isinstance(x, dict) and isinstance(y, dict):
            lines += _outcome_differences(f"{label} part {x.get('id', i)}", x, y)
    return lines


def record_differences(first: RunRecord, second: RunRecord) -> list[str]:
    """Every metric, claim and check of two runs that differs, one line each (empty: the same).

    Metrics must agree to 1e-9 relative; claims and checks on their outcomes only
    (:data:`COMPARED_FIELDS`); a claim of kind ``ratio`` (decided by timings) on its displayed
    outcome only. Timings are never compared."""
    lines = []
    for name in sorted(set(first.metrics) | set(second.metrics)):
        if name not in first.metrics or name not in second.metrics:
            lines.append(f"metric {name}: only in the {'first' if name in first.metrics else 'second'} run")
        elif not same_number(first.metrics[name], second.metrics[name]):
            lines.append(f"metric {name}: {first.metrics[name]!r} != {second.metrics[name]!r}")
    for section in ("claims", "checks"):
        a = {item["id"]: item for item in getattr(first, section)}
        b = {item["id"]: item for item in getattr(second, section)}
        for ident in sorted(set(a) | set(b)):
            if ident not in a or ident not in b:
                lines.append(f"{section[:-1]} {ident}: only in the {'first' if ident in a else 'second'} run")
            else:
                lines += _outcome_differences(f"{section[:-1]} {ident}", a[ident], b[ident])
    return lines
