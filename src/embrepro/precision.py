"""The precision the book's cached MiniLM encodings are computed at, chosen per machine from evidence.

``make benchmark`` (``benchmarks/encoding.py``) measures MiniLM-L6 at fp32 and at bf16 side by
side on the machine it runs on, and the change bf16 makes to the book's MiniLM anchors: STS-B test
(Spearman x 100), a SciFact sub-corpus (nDCG@10 x 100) and LIMIT-small (recall@2 x 100, the
limit chapter's anchor). It records that evidence for the machine's CPU model under
``results/precision/`` (:func:`write_evidence`).

The rule, in :func:`default_precision`: **bf16 only where the CPU computes bf16 natively
(AVX512-BF16 or AMX-BF16) and recorded evidence for this CPU model shows every anchor within**
:data:`ANCHOR_TOLERANCE` **points of fp32; fp32 everywhere else**, including any machine nobody has
measured. The environment variable ``EMBREPRO_PRECISION`` (``fp32`` or ``bf16``) overrides it.
Emulated bf16 is slower than fp32, so asking for bf16 on a CPU without those instructions is an
error rather than a silent slowdown.

The precision is part of every embedding-cache key (:class:`embrepro.retrieval.EmbeddingCache`)
and of every chapter's run key and record, so a bf16 encoding is never served as an fp32 one, and
the run report says which precision each recorded run used. Only inference on the pretrained
MiniLM goes through it; models the book trains, and the Sentence-BERT chapter's anchors, stay fp32.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

__all__ = ["ANCHOR_TOLERANCE", "ENV", "PRECISIONS", "PrecisionError", "anchors_hold", "autocast", "cpu_flags",
           "cpu_model", "default_precision", "evidence", "evidence_path", "has_native_bf16", "write_evidence"]

PRECISIONS = ("fp32", "bf16")
ENV = "EMBREPRO_PRECISION"
ANCHOR_TOLERANCE = 0.05  # points (scores x 100) an anchor may move against fp32 for bf16 to qualify


class PrecisionError(ValueError):
    """An unknown precision, or bf16 asked for on a CPU that would only emulate it."""


@lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where ``cpuinfo`` cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_native_bf16(flags: frozenset[str] | set[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


@lru_cache(maxsize=None)
def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as Linux reports it ("unknown CPU" where it cannot be read)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def evidence_path(model: str | None = None, root: Path | None = None) -> Path:
    """Where the benchmark's evidence for CPU ``model`` is recorded: ``results/precision/<slug>.json``."""
    from embrepro.paths import project_root

    slug = re.sub(r"[^a-z0-9]+", "-", (model or cpu_model()).lower()).strip("-") or "unknown-cpu"
    return (root or project_root()) / "results" / "precision" / f"{slug}.json"


def evidence(model: str | None = None, root: Path | None = None) -> dict | None:
    """The recorded evidence for this CPU model, or None when none was recorded (or it is unreadable)."""
    path = evidence_path(model, root)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("cpu") != (model or cpu_model()):
        return None
    return data


def write_evidence(changes: Mapping[str, float], native: bool, model: str | None = None,
                   root: Path | None = None, **details) -> Path:
    """Record the anchors' change under bf16 (points, bf16 − fp32) for this CPU model, with the rule's result."""
    model = model or cpu_model()
    data = {"cpu": model, "native_bf16": bool(native), "tolerance": ANCHOR_TOLERANCE,
            "anchor_changes": {k: float(v) for k, v in changes.items()},
            "bf16_qualifies": bool(native) and anchors_hold(changes), **details}
    path = evidence_path(model, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def default_precision(flags: frozenset[str] | set[str] | None = None,
                      environ: Mapping[str, str] | None = None, proof: dict | None | bool = True) -> str:
    """``"bf16"`` where the CPU has native bf16 and this CPU model's recorded evidence qualifies it,
    else ``"fp32"``; ``EMBREPRO_PRECISION`` overrides. ``proof`` is the evidence to use (True: read
    it with :func:`evidence`; None: there is none)."""
    environ = os.environ if environ is None else environ
    native = has_native_bf16(flags)
    asked = environ.get(ENV, "").strip()
    if asked:
        if asked not in PRECISIONS:
            raise PrecisionError(f"{ENV}={asked!r}: expected one of {', '.join(PRECISIONS)}")
        if asked == "bf16" and not native:
            raise PrecisionError(f"{ENV}=bf16, but this CPU has neither AVX512-BF16 nor AMX-BF16: bf16 would be "
                                 "emulated and slower than fp32. Unset it or use fp32.")
        return asked
    if not native:
        return "fp32"
    proof = evidence() if proof is True else proof
    qualifies = bool(proof) and proof.get("native_bf16") is True and anchors_hold(proof.get("anchor_changes") or {})
    return "bf16" if qualifies else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """Inference at ``precision``: ``torch.autocast`` to bf16, or nothing for fp32."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    import torch

    with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16,
                                                enabled=precision == "bf16"):
        yield


def anchors_hold(changes: Mapping[str, float], tolerance: float = ANCHOR_TOLERANCE) -> bool:
    """True when every anchor score moved by at most ``tolerance`` points against fp32.

    ``changes`` maps an anchor's name to (score at the candidate precision − score at fp32), in
    points; an empty mapping or a NaN is not evidence and gives False."""
    values = list(changes.values())  # (a 1e-9 allowance: 16.25 - 16.2 is 0.0500000000000007 in floats)
    return bool(values) and all(abs(v) <= tolerance + 1e-9 for v in values)
