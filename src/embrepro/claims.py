"""Claims and checks, decided in code by declared rules (``../shared/docs/verdicts.md``).

A chapter states each claim with a **rule** before any result exists: the kind of claim, its bar
(a minimal effect δ, a margin, a tolerance, a ratio) and its preconditions. Later it hands the rule
an :class:`~embrepro.stats.Interval` (or, for a grid, the per-cell effects; for a compound claim,
one piece of evidence per part) and the rule returns the outcome. Nothing here accepts an outcome
typed by hand.

Rules (``kind``):

* :class:`Direction` ("A beats B"): effect A - B. Reproduced when the lower bound is above 0 and
  the estimate is at least δ; not reproduced when the upper bound is below δ; else inconclusive.
  A tie is never a win.
* :class:`Equivalence` / :class:`NoLoss` ("as good as", "no loss"): a margin m. Equivalence is
  reproduced when the whole interval lies inside (-m, m) and not reproduced when it lies wholly
  outside; NoLoss is one-sided (reproduced when low > -m, not when high < -m).
* :class:`Value` ("reaches 7.4%"): parity around the paper's value with a tolerance.
* :class:`Shape` ("superlinear", "monotone"): the interval of a statistic that separates the shape
  from its null (a quadratic coefficient, a slope), against a bar.
* :class:`Ratio` (speed or size): the interval of a ratio measured side by side, against a bar.
* :class:`Pattern` (a grid of cells): one sign test over the cells' effects.
* :class:`Compound`: parts judged by their own rules; reproduced only if all are, partly when
  some are reproduced and some not, not reproduced when some are not and none are.

Every claim may declare **preconditions** (``requires={"trained": "SGNS reaches 20% ..."}``); at
decision time the chapter reports each one as met or not, and a failed one makes the claim *not
assessable here*, with the reason shown. **Checks** (anchor values, our code equals the official
one, arithmetic properties) pass or fail in their own table and never enter a verdict tally.

``Chapter.save()`` writes ``chapter-result.json`` (format 2), which the runner wraps into its run
record::

    {"format": 2, "chapter": "word2vec", "profile": "book", "device": "cpu",
     "claims": [{"id": "neg_vs_hs", "statement": "...", "kind": "direction",
                 "rule": "Reproduced when the 95% interval of NEG - HS lies above 0 ...",
                 "paper_value": "59 vs 47", "evidence": "V", "source": "Table 1",
                 "preconditions": {"trained": "..."}, "measured": "61.2 vs 55.0",
                 "estimate": 6.2, "interval": [2.1, 10.3], "outcome": "reproduced",
                 "computed_outcome": "reproduced", "why": "...", "parts": {}}],
     "checks": [{"id": "minilm_stsb", "statement": "...", "kind": "anchor", "rule": "...",
                 "expected": 82.03, "measured": 82.03, "outcome": "passed", "source": "MTEB"}],
     "metrics": {"sg_neg5/total": 41.2}, "timings": {"sg_neg5/train_s": 12.1},
     "runtime_s": 212.4, "peak_memory_mb": 1830.0}

At the ``smoke`` profile the displayed outcome is "not assessed (smoke)"; the computed one is kept.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from embrepro.stats import Interval, sign_test

RESULT_FILE = "chapter-result.json"
FORMAT = 2
PROFILES = ("smoke", "book", "paper")
# Where the paper's number was read (anchors.md); "E" marks a claim the paper never makes, the book's
# extension, judged like any other claim (verdicts.md, "Labels and prose").
EVIDENCE = {"V": "primary source", "S": "second-hand", "U": "unverified", "E": "book's extension"}
Evidence = Literal["V", "S", "U", "E"]
CheckKind = Literal["anchor", "implementation", "arithmetic"]


class Outcome(StrEnum):
    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"
    NOT_REPRODUCED = "not reproduced"
    INCONCLUSIVE = "inconclusive"
    NOT_ASSESSABLE = "not assessable here"
    NOT_ASSESSED = "not assessed (smoke)"


class CheckOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_ASSESSED = "not assessed (smoke)"


def _num(x: float, unit: str = "") -> str:
    return f"{x:g}{unit}"


def _level(iv: Interval) -> str:
    return f"{100 * iv.level:.0f}%"


def evidence_label(evidence: str, source: str) -> str:
    """How a claim's evidence is shown: "[V] Table 1", or "book's extension (source)" for "E"."""
    if evidence == "E":
        return f"book's extension ({source})" if source else "book's extension"
    return f"[{evidence}] {source}"


def _require_interval(rule: "Rule", evidence) -> Interval:
    if not isinstance(evidence, Interval):
        raise TypeError(f"a {rule.kind} rule is judged on an embrepro.stats.Interval, not {type(evidence).__name__}")
    return evidence


class Rule:
    """A declared decision rule: ``sentence()`` says it in words, ``judge(evidence)`` applies it."""

    kind: str = "rule"

    def sentence(self) -> str:  # pragma: no cover - every rule overrides it
        raise NotImplementedError

    def judge(self, evidence) -> Outcome:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Direction(Rule):
    """"A beats B": effect = A - B (orient it so that the paper's side is positive).

    ``delta`` is the minimal effect of interest (>= 0) in ``unit``; ``basis`` says where it comes
    from (the paper, or why the book chose it).
    """

    delta: float = 0.0
    unit: str = ""
    effect: str = "A - B"
    basis: str = "any positive effect counts"
    kind = "direction"

    def __post_init__(self):
        if not self.delta >= 0:
            raise ValueError(f"the minimal effect delta must be >= 0, got {self.delta}")

    def sentence(self) -> str:
        bar = "0" if self.delta == 0 else _num(self.delta, self.unit)
        return (f"Reproduced when the interval of {self.effect} lies above 0 and its estimate is at least "
                f"{bar}; not reproduced when its upper bound is below {bar}; otherwise inconclusive "
                f"(δ = {bar}: {self.basis}).")

    def judge(self, evidence) -> Outcome:
        iv = _require_interval(self, evidence)
        if iv.low > 0 and iv.estimate >= self.delta:
            return Outcome.REPRODUCED
        if iv.high < self.delta:
            return Outcome.NOT_REPRODUCED
        return Outcome.INCONCLUSIVE


@dataclass(frozen=True)
class Equivalence(Rule):
    """"As good as": the difference lies within ±margin (two-sided equivalence)."""

    margin: float
    unit: str = ""
    effect: str = "A - B"
    basis: str = ""
    kind = "parity"

    def __post_init__(self):
        if not self.margin > 0:
            raise ValueError(f"an equivalence margin must be > 0, got {self.margin}")

    def sentence(self) -> str:
        m = _num(self.margin, self.unit)
        basis = f" (margin: {self.basis})" if self.basis else ""
        return (f"Reproduced when the whole interval of {self.effect} lies within ±{m}; not reproduced "
                f"when it lies wholly outside; otherwise inconclusive{basis}.")

    def judge(self, evidence) -> Outcome:
        iv = _require_interval(self, evidence)
        if -self.margin < iv.low and iv.high < self.margin:
            return Outcome.REPRODUCED
        if iv.low > self.margin or iv.high < -self.margin:
            return Outcome.NOT_REPRODUCED
        return Outcome.INCONCLUSIVE


@dataclass(frozen=True)
class NoLoss(Rule):
    """"Without losing accuracy": one-sided non-inferiority, A - B > -margin."""

    margin: float
    unit: str = ""
    effect: str = "A - B"
    basis: str = ""
    kind = "parity"

    def __post_init__(self):
        if not self.margin > 0:
            raise ValueError(f"a non-inferiority margin must be > 0, got {self.margin}")

    def sentence(self) -> str:
        m = _num(self.margin, self.unit)
        basis = f" (margin: {self.basis})" if self.basis else ""
        return (f"Reproduced when the lower bound of {self.effect} is above -{m}; not reproduced when the "
                f"upper bound is below -{m}; otherwise inconclusive{basis}.")

    def judge(self, evidence) -> Outcome:
        iv = _require_interval(self, evidence)
        if iv.low > -self.margin:
            return Outcome.REPRODUCED
        if iv.high < -self.margin:
            return Outcome.NOT_REPRODUCED
        return Outcome.INCONCLUSIVE


@dataclass(frozen=True)
class Value(Rule):
    """"Reaches X": the measured value lies within ±tolerance of the paper's value ``target``."""

    target: float
    tolerance: float
    unit: str = ""
    basis: str = ""
    kind = "value"

    def __post_init__(self):
        if not self.tolerance > 0:
            raise ValueError(f"a tolerance must be > 0, got {self.tolerance}")

    def sentence(self) -> str:
        basis = f" (tolerance: {self.basis})" if self.basis else ""
        return (f"Reproduced when the whole interval of the measured value lies within "
                f"{_num(self.target, self.unit)} ± {_num(self.tolerance, self.unit)}; not reproduced when it "
                f"lies wholly outside; otherwise inconclusive{basis}.")

    def judge(self, evidence) -> Outcome:
        iv = _require_interval(self, evidence).shift(-self.target)
        return Equivalence(self.tolerance).judge(iv)


@dataclass(frozen=True)
class _Threshold(Rule):
    bar: float
    above: bool = True

    def judge(self, evidence) -> Outcome:
        iv = _require_interval(self, evidence)
        low, high = (iv.low, iv.high) if self.above else (-iv.high, -iv.low)
        bar = self.bar if self.above else -self.bar
        if low > bar:
            return Outcome.REPRODUCED
        if high < bar:
            return Outcome.NOT_REPRODUCED
        return Outcome.INCONCLUSIVE


@dataclass(frozen=True)
class Shape(_Threshold):
    """A shape ("convex", "decreasing") decided from the interval of a separating ``statistic``."""

    statistic: str = "the statistic"
    bar: float = 0.0
    above: bool = True
    kind = "shape"

    def sentence(self) -> str:
        side, other = ("above", "below") if self.above else ("below", "above")
        return (f"Reproduced when the interval of {self.statistic} lies {side} {self.bar:g}; not "
                f"reproduced when it lies {other}; otherwise inconclusive.")


@dataclass(frozen=True)
class Ratio(_Threshold):
    """A speed or size ratio (measured side by side) against a bar: ``what`` >= ``bar``."""

    what: str = "the speed-up"
    bar: float = 1.0
    above: bool = True
    kind = "ratio"

    def sentence(self) -> str:
        side, other = ("above", "below") if self.above else ("below", "above")
        return (f"Reproduced when the interval of {self.what} lies {side} {self.bar:g}x; not reproduced "
                f"when it lies {other}; otherwise inconclusive.")


@dataclass(frozen=True)
class Pattern(Rule):
    """A claim over many cells, judged by one sign test over the cells' effects (ties dropped)."""

    cells: str = "cells"
    alpha: float = 0.05
    tie: float = 0.0
    kind = "pattern"

    def sentence(self) -> str:
        tie = f" (|effect| <= {self.tie:g} is a tie)" if self.tie else ""
        return (f"One sign test over the {self.cells}{tie}: reproduced when positive effects outnumber "
                f"negative ones beyond chance (one-sided p < {self.alpha:g}); not reproduced when negative "
                f"ones do; otherwise inconclusive. Raw per-cell wins are not counted.")

    def judge(self, evidence) -> Outcome:
        if isinstance(evidence, Interval) or isinstance(evidence, (int, float)):
            raise TypeError("a pattern rule is judged on the per-cell effects (a sequence of numbers)")
        result = sign_test(list(evidence), tie=self.tie)
        if result.p_more_wins < self.alpha:
            return Outcome.REPRODUCED
        if result.p_more_losses < self.alpha:
            return Outcome.NOT_REPRODUCED
        return Outcome.INCONCLUSIVE


def combine(parts: Sequence[Outcome | str]) -> Outcome:
    """The outcome of a compound claim from its parts' outcomes (see the module docstring)."""
    parts = [Outcome(p) for p in parts]
    if not parts:
        raise ValueError("combine() needs at least one part")
    if all(p == Outcome.NOT_ASSESSABLE for p in parts):
        return Outcome.NOT_ASSESSABLE
    if all(p == Outcome.REPRODUCED for p in parts):
        return Outcome.REPRODUCED
    has_yes = Outcome.REPRODUCED in parts or Outcome.PARTLY in parts
    has_no = Outcome.NOT_REPRODUCED in parts or Outcome.PARTLY in parts
    if has_yes and has_no:
        return Outcome.PARTLY
    if has_no:
        return Outcome.NOT_REPRODUCED
    return Outcome.INCONCLUSIVE


@dataclass(frozen=True)
class Compound(Rule):
    """A claim with several parts, each with its own rule: ``Compound({"speed": Ratio(...), ...})``."""

    parts: Mapping[str, Rule]
    kind = "compound"

    def __post_init__(self):
        if not self.parts:
            raise ValueError("a compound claim needs at least one part")
        object.__setattr__(self, "parts", dict(self.parts))

    def __hash__(self):
        return hash(tuple(self.parts))

    def sentence(self) -> str:
        inner = " ".join(f"[{name}, {rule.kind}] {rule.sentence()}" for name, rule in self.parts.items())
        return (f"Each part judged by its own rule; reproduced when all parts are, partly when some are "
                f"reproduced and some not, not reproduced when some are not and none are. {inner}")

    def judge_parts(self, evidence: Mapping) -> dict[str, Outcome]:
        if set(evidence) != set(self.parts):
            raise ValueError(f"a compound claim needs evidence for exactly its parts {sorted(self.parts)}, "
                             f"got {sorted(evidence)}")
        return {name: _judge_part(rule, evidence[name]) for name, rule in self.parts.items()}

    def judge(self, evidence) -> Outcome:
        return combine(list(self.judge_parts(evidence).values()))


class NotAssessable:
    """Evidence for one part of a compound claim whose own precondition failed: ``NotAssessable("why")``."""

    def __init__(self, reason: str):
        self.reason = reason


def _judge_part(rule: Rule, evidence) -> Outcome:
    return Outcome.NOT_ASSESSABLE if isinstance(evidence, NotAssessable) else rule.judge(evidence)


# --------------------------------------------------------------------------------------------
# The chapter record
# --------------------------------------------------------------------------------------------

@dataclass
class Claim:
    id: str
    statement: str
    rule: Rule
    paper_value: str
    evidence: str
    source: str
    preconditions: dict[str, str] = field(default_factory=dict)
    measured: str | None = None
    estimate: float | None = None
    interval: tuple[float, float] | None = None
    interval_method: str = ""
    outcome: Outcome | None = None
    computed_outcome: Outcome | None = None
    why: str = ""
    parts: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.rule.kind

    def to_json(self) -> dict:
        return {
            "id": self.id, "statement": self.statement, "kind": self.kind, "rule": self.rule.sentence(),
            "paper_value": self.paper_value, "evidence": self.evidence, "source": self.source,
            "preconditions": self.preconditions, "measured": self.measured, "estimate": _json_num(self.estimate),
            "interval": None if self.interval is None else [_json_num(v) for v in self.interval],
            "interval_method": self.interval_method,
            "outcome": None if self.outcome is None else str(self.outcome),
            "computed_outcome": None if self.computed_outcome is None else str(self.computed_outcome),
            "why": self.why, "parts": self.parts,
        }


@dataclass
class Check:
    id: str
    statement: str
    kind: str
    rule: str
    source: str
    expected: float | str | None = None
    measured: float | str | None = None
    outcome: CheckOutcome | None = None
    computed_outcome: CheckOutcome | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "statement": self.statement, "kind": self.kind, "rule": self.rule,
                "source": self.source, "expected": _json_num(self.expected), "measured": _json_num(self.measured),
                "outcome": None if self.outcome is None else str(self.outcome),
                "computed_outcome": None if self.computed_outcome is None else str(self.computed_outcome)}


def _json_num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


@dataclass
class Chapter:
    """What one notebook run states, measures and decides. Open it with :func:`embrepro.kit.open_chapter`."""

    name: str
    profile: str
    device: str = "cpu"
    seeds: list[int] = field(default_factory=lambda: [0])
    claims: dict[str, Claim] = field(default_factory=dict)
    checks: dict[str, Check] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be smoke, book or paper, not {self.profile!r}")

    @property
    def assessed(self) -> bool:
        return self.profile != "smoke"

    # -- claims ---------------------------------------------------------------------------------
    def claim(self, id: str, statement: str, *, rule: Rule, paper_value: str, evidence: Evidence,
              source: str, requires: Mapping[str, str] | None = None) -> Claim:
        """State a claim with its rule and preconditions, before any result is computed."""
        if evidence not in EVIDENCE:
            raise ValueError(f"evidence must be one of {sorted(EVIDENCE)} (see anchors.md), not {evidence!r}")
        if not isinstance(rule, Rule):
            raise TypeError(f"rule must be a claims rule (Direction, NoLoss, ...), not {type(rule).__name__}")
        if id in self.claims or id in self.checks:
            raise ValueError(f"{id!r} is stated twice")
        self.claims[id] = Claim(id, statement, rule, str(paper_value), evidence, source, dict(requires or {}))
        return self.claims[id]

    def decide(self, id: str, evidence, *, measured: str, why: str = "",
               preconditions: Mapping[str, tuple[bool, str]] | None = None) -> Claim:
        """Apply the claim's declared rule to ``evidence`` and record the outcome.

        ``evidence``: an :class:`~embrepro.stats.Interval` (direction, parity, value, shape, ratio),
        the per-cell effects (pattern), or ``{part: evidence}`` (compound). ``preconditions`` maps
        every declared precondition to ``(met, what was measured)``; one that is not met makes the
        claim "not assessable here" whatever the evidence says.
        """
        if id not in self.claims:
            raise KeyError(f"no claim {id!r}; state it with chapter.claim() first")
        c = self.claims[id]
        if c.outcome is not None:
            raise ValueError(f"claim {id!r} is decided twice")
        reported = dict(preconditions or {})
        if set(reported) != set(c.preconditions):
            raise ValueError(f"claim {id!r} declared preconditions {sorted(c.preconditions)}; "
                             f"decide() reported {sorted(reported)}")
        failed = [f"{c.preconditions[name]}: not met ({detail})"
                  for name, (met, detail) in reported.items() if not met]
        if isinstance(c.rule, Compound):
            parts = c.rule.judge_parts(evidence)
            c.parts = {name: str(o) for name, o in parts.items()}
            outcome = combine(list(parts.values()))
            notes = [f"{name}: {evidence[name].reason}" for name in parts if isinstance(evidence[name], NotAssessable)]
            if notes:
                why = "; ".join([why, *notes]) if why else "; ".join(notes)
        else:
            outcome = c.rule.judge(evidence)
        if isinstance(evidence, Interval):
            c.estimate, c.interval, c.interval_method = evidence.estimate, (evidence.low, evidence.high), evidence.method
        if failed:
            outcome = Outcome.NOT_ASSESSABLE
            why = "; ".join(failed + ([why] if why else []))
        c.measured, c.computed_outcome, c.why = measured, outcome, why
        c.outcome = outcome if self.assessed else Outcome.NOT_ASSESSED
        glue(f"{id}_verdict", str(c.outcome))
        glue(f"{id}_measured", measured)
        return c

    # -- checks ---------------------------------------------------------------------------------
    def check(self, id: str, statement: str, *, kind: CheckKind, source: str,
              expected: float | str | None = None, measured: float | str | None = None,
              tolerance: float | None = None, passed: bool | None = None, rule: str = "") -> Check:
        """A pass/fail check, never counted among claims.

        Numeric: ``expected``, ``measured`` and ``tolerance`` (passes when |measured - expected| <=
        tolerance). Otherwise ``passed`` from a comparison made in code, with ``rule`` saying what it is.
        """
        if kind not in ("anchor", "implementation", "arithmetic"):
            raise ValueError(f"check kind must be anchor, implementation or arithmetic, not {kind!r}")
        if id in self.claims or id in self.checks:
            raise ValueError(f"{id!r} is stated twice")
        if tolerance is not None:
            if passed is not None:
                raise ValueError("give either a tolerance or passed=, not both")
            if not isinstance(expected, (int, float)) or not isinstance(measured, (int, float)):
                raise TypeError("a check with a tolerance needs numeric expected and measured values")
            passed = bool(abs(float(measured) - float(expected)) <= tolerance)
            rule = rule or f"Passes when |measured - expected| <= {tolerance:g}."
        elif passed is None:
            raise ValueError("a check needs a tolerance or passed=")
        elif not rule:
            raise ValueError("a check decided by passed= must say its rule")
        computed = CheckOutcome.PASSED if passed else CheckOutcome.FAILED
        self.checks[id] = Check(id, statement, kind, rule, source,
                                expected if not isinstance(expected, float) else float(expected),
                                measured if not isinstance(measured, float) else float(measured),
                                computed if self.assessed else CheckOutcome.NOT_ASSESSED, computed)
        glue(f"{id}_check", str(self.checks[id].outcome))
        return self.checks[id]

    # -- numbers --------------------------------------------------------------------------------
    def metric(self, name: str, value: float) -> float:
        """Record a deterministic result (compared across identical runs by the determinism check)."""
        value = float(value)
        self.metrics[name] = value
        return value

    def timing(self, name: str, value: float) -> float:
        """Record a wall-clock measurement or a speed ratio (never compared across runs)."""
        value = float(value)
        self.timings[name] = value
        return value

    def report(self, name: str, value, *, timing: bool = False):
        """Record a number and glue it for the prose, in one call; strings are only glued."""
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            # plain Python numbers: myst-nb formats a glued numpy scalar's repr, not its value
            value = int(value) if isinstance(value, numbers.Integral) else float(value)
            (self.timing if timing else self.metric)(name, value)
        glue(name, value)
        return value

    # -- tables ---------------------------------------------------------------------------------
    def table(self):
        """The claims: statement, paper value, evidence, kind, rule, measured, interval, outcome."""
        import pandas as pd

        rows = [{
            "id": c.id, "claim": c.statement, "paper": c.paper_value,
            "evidence": evidence_label(c.evidence, c.source), "kind": c.kind, "rule": c.rule.sentence(),
            "preconditions": "; ".join(c.preconditions.values()),
            "measured here": c.measured or "",
            "interval": "" if c.interval is None else f"[{c.interval[0]:.3g}, {c.interval[1]:.3g}]",
            "verdict": str(c.outcome) if c.outcome else "(not decided)",
        } for c in self.claims.values()]
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(rows)

    def claims_table(self):
        """The claims as stated, before results: statement, paper value, evidence, kind, rule."""
        return self.table()[["claim", "paper", "evidence", "kind", "rule", "preconditions"]]

    def verdicts(self):
        """The decided claims: paper value, measured value, interval, verdict and why."""
        t = self.table()
        verdict = [str(c.outcome) + (" (" + "; ".join(f"{part}: {o}" for part, o in c.parts.items()) + ")"
                                     if c.parts else "") if c.outcome else "(not decided)"
                   for c in self.claims.values()]
        return t.assign(verdict=verdict, why=[c.why for c in self.claims.values()])[
            ["claim", "paper", "measured here", "interval", "verdict", "why"]]

    def checks_table(self):
        """The checks: statement, kind, expected, measured, rule, outcome."""
        import pandas as pd

        rows = [{"id": k.id, "check": k.statement, "kind": k.kind, "expected": k.expected,
                 "measured": k.measured, "rule": k.rule, "source": k.source,
                 "outcome": str(k.outcome) if k.outcome else ""} for k in self.checks.values()]
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(rows)

    # -- cost and save --------------------------------------------------------------------------
    def cost(self) -> dict:
        """Runtime so far and peak memory, for the chapter's Cost section."""
        return {"runtime_s": time.time() - self.started, "peak_memory_mb": peak_memory_mb()}

    def record(self) -> dict:
        cost = self.cost()
        return {
            "format": FORMAT, "chapter": self.name, "profile": self.profile, "device": self.device,
            "seeds": list(self.seeds),
            "claims": [c.to_json() for c in self.claims.values()],
            "checks": [k.to_json() for k in self.checks.values()],
            "metrics": self.metrics, "timings": self.timings, **cost,
        }

    def save(self, folder: str | Path = ".") -> Path:
        """Write ``chapter-result.json`` (see the module docstring). Fails on undecided claims."""
        undecided = [c.id for c in self.claims.values() if c.outcome is None]
        if undecided:
            raise RuntimeError(f"claims stated but never decided: {', '.join(undecided)}")
        path = Path(folder) / RESULT_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.record(), indent=2, default=float))
        os.replace(tmp, path)
        return path

    def close(self, folder: str | Path = "."):
        """End of the chapter: glue runtime and peak memory, save the record, return the cost table."""
        import pandas as pd

        cost = self.cost()
        glue("runtime_s", cost["runtime_s"])
        glue("peak_memory_mb", cost["peak_memory_mb"])
        self.save(folder)
        return pd.DataFrame([{"runtime (s)": round(cost["runtime_s"], 1),
                              "peak memory (MB)": round(cost["peak_memory_mb"]),
                              "device": self.device, "seeds": len(self.seeds)}])


def glue(name: str, value, display: bool = False):
    """myst-nb's ``glue``, so that prose quotes computed values instead of typed ones.

    Numbers are glued as they are (quote them with ``{glue:text}`name:.1f```); strings are glued
    as Markdown (quote them with ``{glue:md}`name```), so they appear without quotes.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:  # outside the notebook toolchain there is nothing to glue into
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, str):
        from IPython.display import Markdown

        _glue(name, Markdown(value), display=display)
    else:
        _glue(name, value, display=display)
    return value
