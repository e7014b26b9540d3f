"""The precision the book's cached MiniLM encodings are computed at, chosen per machine.

``make benchmark`` (``benchmarks/encoding.py``) measured MiniLM-L6 on this book's reference
machine (2 cores with AVX512-BF16 and AMX): bf16 autocast encodes about 2.8 times faster than
fp32, its vectors have a mean cosine of 0.99998 to fp32's, and the two anchor scores move by
about 0.01 (STS-B Spearman) and 0.02 (SciFact nDCG@10) points. Dynamic int8 is faster too but
loses more than a point on both, so it is never a default.

The rule, in :func:`default_precision`: **bf16 where the CPU runs bf16 natively (AVX512-BF16 or
AMX-BF16), fp32 everywhere else**; the environment variable ``EMBREPRO_PRECISION`` (``fp32`` or
``bf16``) overrides it. Emulated bf16 is slower than fp32, so asking for bf16 on a CPU without
those instructions is an error rather than a silent slowdown. The benchmark checks the evidence
side of the rule on each machine (:func:`anchors_hold`: every anchor within
:data:`ANCHOR_TOLERANCE` points of fp32).

The precision is part of every embedding-cache key (:class:`embrepro.retrieval.EmbeddingCache`)
and of every chapter's run key and record, so a bf16 encoding is never served as an fp32 one.
Only inference on the pretrained MiniLM goes through it; models the book trains are trained and
evaluated in fp32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

__all__ = ["ANCHOR_TOLERANCE", "ENV", "PRECISIONS", "PrecisionError", "anchors_hold", "autocast",
           "cpu_flags", "default_precision", "has_native_bf16"]

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


def default_precision(flags: frozenset[str] | set[str] | None = None,
                      environ: Mapping[str, str] | None = None) -> str:
    """``"bf16"`` on a CPU with native bf16, else ``"fp32"``; ``EMBREPRO_PRECISION`` overrides."""
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
    return "bf16" if native else "fp32"


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
    values = list(changes.values())
    return bool(values) and all(abs(v) <= tolerance for v in values)
