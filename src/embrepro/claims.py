"""Claims, verdicts computed in code, and what a chapter hands back to the runner.

A notebook opens one :class:`Chapter`, states each paper claim with the paper's value and its
evidence label, and later decides it with one of the verdict functions below, from its own
measurements. Nothing here ever takes a verdict typed by hand. At the ``smoke`` profile verdicts
are shown as "not assessed (smoke)" (the computed one is still kept, for testing).

``Chapter.save()`` writes ``chapter-result.json`` into the working folder (the run folder when
the runner executes the notebook)::

    {
      "chapter": "word2vec",
      "profile": "book",
      "claims": [{"id": "neg_vs_hs", "statement": "...", "paper_value": "59 vs 47",
                  "evidence": "V", "source": "...", "measured": "61.2 vs 55.0",
                  "verdict": "reproduced", "computed_verdict": "reproduced", "why": "..."}],
      "metrics": {"sg_neg5/total": 41.2, ...},
      "runtime_s": 212.4,
      "peak_memory_mb": 1830.0
    }
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE)
NOT_ASSESSED = "not assessed (smoke)"
EVIDENCE = {"V": "primary source", "S": "second-hand", "U": "unverified"}
RESULT_FILE = "chapter-result.json"


# --------------------------------------------------------------------------------------------
# Verdict functions: pure, tested, the only way a verdict is made
# --------------------------------------------------------------------------------------------

def noise_band(a: Sequence[float], b: Sequence[float], floor: float = 0.0) -> float:
    """Two standard errors of the difference of two means (seed noise), at least ``floor``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    var = 0.0
    for x in (a, b):
        if len(x) > 1:
            var += x.var(ddof=1) / len(x)
    return max(2.0 * float(np.sqrt(var)), floor)


def verdict_greater(a: Sequence[float], b: Sequence[float], *, floor: float = 0.0) -> str:
    """Is ``a`` larger than ``b``? Samples are per-seed measurements.

    ``reproduced`` when mean(a) - mean(b) exceeds the noise band, ``not reproduced`` when it is
    below minus the band, else ``inconclusive`` (a tie within seed noise). ``floor`` is the
    smallest difference that counts when there are too few seeds to estimate noise.
    """
    diff = float(np.mean(a) - np.mean(b))
    band = noise_band(a, b, floor)
    if diff > band:
        return REPRODUCED
    if diff < -band:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_at_least(a: Sequence[float], b: Sequence[float], *, floor: float = 0.0) -> str:
    """Is ``a`` at least as large as ``b``? A tie within noise counts as reproduced here."""
    diff = float(np.mean(a) - np.mean(b))
    return NOT_REPRODUCED if diff < -noise_band(a, b, floor) else REPRODUCED


def verdict_within(measured: float, target: float, tolerance: float) -> str:
    """``reproduced`` within ``tolerance``, ``partly`` within twice that, else ``not reproduced``."""
    gap = abs(measured - target)
    if gap <= tolerance:
        return REPRODUCED
    if gap <= 2 * tolerance:
        return PARTLY
    return NOT_REPRODUCED


def verdict_interval(low: float, high: float, threshold: float) -> str:
    """Decide "the quantity exceeds ``threshold``" from a confidence interval [low, high]."""
    if low > threshold:
        return REPRODUCED
    if high < threshold:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_ratio(ratio: float, at_least: float) -> str:
    """Is a measured ratio (a speed-up, a size reduction) at least ``at_least``?"""
    return REPRODUCED if ratio >= at_least else NOT_REPRODUCED


def combine(parts: Sequence[str]) -> str:
    """One verdict from sub-verdicts: all reproduced, none, or partly; inconclusive if all are."""
    parts = list(parts)
    if not parts:
        raise ValueError("combine() needs at least one verdict")
    if all(p == REPRODUCED for p in parts):
        return REPRODUCED
    if all(p == INCONCLUSIVE for p in parts):
        return INCONCLUSIVE
    if all(p in (NOT_REPRODUCED, INCONCLUSIVE) for p in parts):
        return NOT_REPRODUCED
    return PARTLY


# --------------------------------------------------------------------------------------------
# The chapter record
# --------------------------------------------------------------------------------------------

@dataclass
class Claim:
    id: str
    statement: str
    paper_value: str
    evidence: str
    source: str
    measured: str | None = None
    verdict: str | None = None
    computed_verdict: str | None = None
    why: str = ""


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


@dataclass
class Chapter:
    """What one notebook run states, measures and decides."""

    name: str
    profile: str
    device: str = "cpu"
    claims: dict[str, Claim] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.profile not in ("smoke", "book", "paper"):
            raise ValueError(f"profile must be smoke, book or paper, not {self.profile!r}")

    @property
    def assessed(self) -> bool:
        return self.profile != "smoke"

    def claim(self, id: str, statement: str, *, paper_value: str, evidence: str, source: str) -> Claim:
        if evidence not in EVIDENCE:
            raise ValueError(f"evidence must be one of {sorted(EVIDENCE)} (see anchors.md), not {evidence!r}")
        if id in self.claims:
            raise ValueError(f"claim {id!r} is stated twice")
        self.claims[id] = Claim(id, statement, str(paper_value), evidence, source)
        return self.claims[id]

    def decide(self, id: str, verdict: str, *, measured: str, why: str) -> Claim:
        """Record a verdict computed by one of the verdict functions, with the measured value."""
        if id not in self.claims:
            raise KeyError(f"no claim {id!r}; state it with Chapter.claim() first")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must come from a verdict function ({VERDICTS}), not {verdict!r}")
        c = self.claims[id]
        c.measured, c.computed_verdict, c.why = measured, verdict, why
        c.verdict = verdict if self.assessed else NOT_ASSESSED
        self._glue(f"{id}_verdict", c.verdict)
        self._glue(f"{id}_measured", measured)
        return c

    def metric(self, name: str, value: float) -> float:
        self.metrics[name] = float(value)
        return value

    def table(self):
        """The claims as a table: statement, paper value, evidence, measured value, verdict."""
        import pandas as pd

        rows = [{
            "id": c.id,
            "claim": c.statement,
            "paper": c.paper_value,
            "evidence": f"[{c.evidence}] {c.source}",
            "measured here": c.measured or "",
            "verdict": c.verdict or "(not decided)",
        } for c in self.claims.values()]
        return pd.DataFrame(rows).set_index("id")

    def cost(self) -> dict:
        """Runtime so far and peak memory, for the chapter's Cost section."""
        return {"runtime_s": time.time() - self.started, "peak_memory_mb": peak_memory_mb()}

    def save(self, folder: str | Path = ".") -> Path:
        """Write ``chapter-result.json`` (see the module docstring). Fails on undecided claims."""
        undecided = [c.id for c in self.claims.values() if c.verdict is None]
        if undecided:
            raise RuntimeError(f"claims stated but never decided: {', '.join(undecided)}")
        payload = {
            "chapter": self.name,
            "profile": self.profile,
            "device": self.device,
            "claims": [asdict(c) for c in self.claims.values()],
            "metrics": self.metrics,
            **self.cost(),
        }
        path = Path(folder) / RESULT_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=float))
        os.replace(tmp, path)
        return path

    def recorded_runs(self):
        """Runs of this chapter kept under ``results/<chapter>/<profile>.json``, as a table."""
        return recorded_runs(self.name)

    @staticmethod
    def _glue(name: str, value) -> None:
        glue(name, value)


def glue(name: str, value, display: bool = False):
    """myst-nb's ``glue``, so that prose quotes computed values instead of typed ones.

    Numbers are glued as they are (quote them with ``{glue:text}`name:.1f```); strings are glued
    as Markdown (quote them with ``{glue:md}`name```), so they appear without quotes.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:  # outside the notebook toolchain there is nothing to glue into
        return value
    if isinstance(value, str):
        from IPython.display import Markdown

        _glue(name, Markdown(value), display=display)
    else:
        _glue(name, value, display=display)
    return value


def recorded_runs(chapter: str):
    """Recorded runs of a chapter (profile, runtime, peak memory, machine), newest file per profile."""
    import pandas as pd

    from embrepro.paths import project_root

    rows = []
    for path in sorted((project_root() / "results" / chapter).glob("*.json")):
        r = json.loads(path.read_text())
        rows.append({
            "profile": r["profile"],
            "runtime (s)": round(r["runtime_s"], 1),
            "peak memory (MB)": round(r["peak_memory_mb"]),
            "device": r.get("device", "cpu"),
            "cores": r.get("cpu_count"),
            "recorded": r.get("finished", ""),
        })
    if not rows:
        print(f"No recorded runs of {chapter} yet (embrepro record {chapter} --profile P adds one).")
    order = {"smoke": 0, "book": 1, "paper": 2}
    return pd.DataFrame(rows).sort_values("profile", key=lambda s: s.map(order)) if rows else pd.DataFrame(rows)
