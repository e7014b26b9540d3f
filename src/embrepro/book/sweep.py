"""Sweeps: one chapter over a grid of parameter values and seeds, run on Dask distributed.

    embrepro sweep word2vec --profile smoke --grid window=2,5 --grid negative=5,15 --seeds 2

Every grid point (the product of the ``--grid`` values) and, with ``--seeds N``, each of N seeds is
one *task*. A task is one call of :meth:`embrepro.book.runner.Runner.run` for the chapter, the call
``embrepro run CHAPTER -p NAME=VALUE ...`` makes: the same parameter validation, the same content
cache under ``_runs/`` and the same run records. So a point that already ran (in a sweep or with
``embrepro run``, at the same thread count) is a cache hit, and a rerun of a sweep runs only the
points that failed or are new.

**Validation first.** Every task's parameters are resolved and checked (unknown name, wrong type,
out of the ``.yml``'s declared range, ``--seeds`` for a chapter without a ``seed`` parameter)
before anything is submitted; a problem stops the sweep with :class:`ParameterError` (exit 2).

**Seeds.** ``--seeds N`` sets the chapter's ``seed`` parameter (:data:`SEED_PARAMETER`; every
chapter of the book has one, the first seed of its random parts). Several chapters draw
``n_seeds`` (or, in retrofitting, ``n_control_seeds``; :data:`SEED_COUNT_PARAMETERS`) seeds
``seed, seed + 1, ...`` inside one run, so the sweep spaces its seeds by the largest such count
over the grid: ``seed_i = seed + i * stride``, and no two tasks share a seed. A parameter such as
``corpus_seed`` or ``anchor_seeds`` is an ordinary parameter: sweep it with ``--grid``.

**The engine.** ``--scheduler ADDRESS`` connects to a running Dask scheduler (its workers must see
the project and ``_runs/`` at the same paths: a shared file system); otherwise a
``LocalCluster(n_workers=--workers, threads_per_worker=1, processes=True)`` is started and closed
at the end. A task whose notebook raises, or whose worker dies (no retry: Dask's
``allowed-failures`` is 0 on the local cluster), is reported with its point, the error's last line
and the executed notebook kept by the runner; the other tasks go on. Kernels get the client's
:func:`embrepro.paths.threads` (part of the cache key, so a sweep shares its cache with
``embrepro run``), or ``--threads T``: N workers x T threads should not exceed the cores (the
sweep says so when they do); a different T is a different cache key, and gensim's results depend
on it.

The runner moves a chapter's ``latest-<profile>.json`` pointer to every run it makes; the sweep
puts it back afterwards, so the book still shows the run it showed before the sweep.

**Output** (:func:`sweep_folder`): ``_build/sweeps/<chapter>/<name>/`` (or ``--out``) holds
``sweep.csv`` (one row per task: the grid values, seed, status, cache hit, run time, each claim's
outcome, every scalar metric, the run folder and the error), ``sweep.png`` (a metric against the
first grid parameter, one line per seed, and every claim's outcome per point), ``sweep.md`` (a
page with the figure and the table; a chapter includes it with MyST's ``{include}`` directive
and ``:relative-images:``) and ``sweep.log`` (the runner's log lines of every task).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from embrepro.book.runner import ChapterSpec, ParameterError, Runner, UsageError, runs_dir
from embrepro.paths import project_root, threads

SEED_PARAMETER = "seed"
SEED_COUNT_PARAMETERS = ("n_seeds", "n_control_seeds")
DEFAULT_WORKERS = 2


@dataclass
class Task:
    """One run of the sweep: a grid point and (with ``--seeds``) a seed."""

    index: int
    point: dict[str, str]            # grid parameter -> value as typed on the command line
    seed_index: int | None           # 0..N-1 with --seeds, else None
    overrides: dict[str, str]        # what the runner gets (the point, plus the seed)
    values: dict = field(default_factory=dict)  # the resolved values of the grid parameters and the seed

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.point.items()]
        if self.seed_index is not None:
            parts.append(f"{SEED_PARAMETER}={self.overrides[SEED_PARAMETER]}")
        return ", ".join(parts) or "(defaults)"


def split_values(text: str) -> list[str]:
    """``"1,2,[3, 4]"`` -> ``["1", "2", "[3, 4]"]``: commas inside brackets or quotes do not split."""
    values, current, depth, quote = [], [], 0, None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    values.append("".join(current).strip())
    return values


def parse_grid(pairs: list[str]) -> dict[str, list[str]]:
    """``["window=2,5", "negative=5"]`` -> ``{"window": ["2", "5"], "negative": ["5"]}``."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"--grid takes NAME=V1,V2,..., got {pair!r}")
        values = split_values(text)
        if any(v == "" for v in values):
            raise ParameterError(f"--grid {name}: an empty value in {text!r}")
        if name in grid:
            raise ParameterError(f"--grid {name} is given twice; list all its values in one --grid")
        if len(set(values)) != len(values):
            raise ParameterError(f"--grid {name} lists a value twice: {text!r}")
        grid[name] = values
    return grid


def plan_tasks(spec: ChapterSpec, profile: str, grid: dict[str, list[str]], seeds: int | None) -> list[Task]:
    """Every task of the sweep, each validated by :meth:`ChapterSpec.resolve` (raises
    :class:`ParameterError` naming the first problem; nothing has run)."""
    if not grid and not seeds:
        raise UsageError("nothing to sweep: give --grid NAME=V1,V2 and/or --seeds N")
    if seeds is not None:
        if seeds < 1:
            raise ParameterError(f"--seeds must be at least 1, got {seeds}")
        if SEED_PARAMETER not in spec.defaults:
            raise ParameterError(f"{spec.name} has no {SEED_PARAMETER!r} parameter, so --seeds cannot vary it; "
                                 f"its parameters: {', '.join(sorted(spec.defaults))}")
        if SEED_PARAMETER in grid:
            raise ParameterError(f"give the seeds either with --seeds or with --grid {SEED_PARAMETER}=..., not both")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else [{}]
    resolved = [spec.resolve(profile, point) for point in points]  # raises ParameterError
    tasks: list[Task] = []
    if seeds is None:
        for point, params in zip(points, resolved):
            values = {k: params[k] for k in point}
            if SEED_PARAMETER in params:
                values.setdefault(SEED_PARAMETER, params[SEED_PARAMETER])
            tasks.append(Task(len(tasks), point, None, dict(point), values))
        return tasks
    stride = max([1] + [int(p[c]) for p in resolved for c in SEED_COUNT_PARAMETERS
                        if isinstance(p.get(c), int) and not isinstance(p.get(c), bool)])
    for point, params in zip(points, resolved):
        base = params[SEED_PARAMETER]
        for i in range(seeds):
            overrides = {**point, SEED_PARAMETER: str(base + i * stride)}
            checked = spec.resolve(profile, overrides)  # the seed against the declared range
            values = {**{k: checked[k] for k in point}, SEED_PARAMETER: checked[SEED_PARAMETER]}
            tasks.append(Task(len(tasks), point, i, overrides, values))
    return tasks


def default_name(profile: str, grid: dict[str, list[str]], seeds: int | None) -> str:
    """A folder name that says what the sweep was: ``smoke-window=2,5-seeds2``."""
    parts = [profile] + [f"{k}={','.join(v)}" for k, v in grid.items()] + ([f"seeds{seeds}"] if seeds else [])
    name = re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", "-".join(parts))
    if len(name) > 100:
        import hashlib

        name = name[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return name


def sweep_folder(chapter: str, name: str) -> Path:
    """Where a sweep's table, figure, page and log go: ``<project>/_build/sweeps/<chapter>/<name>``."""
    return project_root() / "_build" / "sweeps" / chapter / name


# --------------------------------------------------------------------------------------------
# What runs on a worker
# --------------------------------------------------------------------------------------------

def run_task(chapters: dict, chapter: str, profile: str, overrides: dict[str, str], force: bool,
             environ: dict[str, str]) -> dict:
    """One runner call on a Dask worker; returns plain data (never raises for a failed chapter)."""
    from embrepro.book.record import RUN_FILE, RunRecord

    os.environ.update(environ)  # runs folder, thread count, data and cache locations of the client
    lines: list[str] = []
    start = time.time()
    result = {"status": "failed", "folder": "", "seconds": 0.0, "message": "", "claims": {}, "metrics": {},
              "runtime_s": float("nan"), "log": lines, "worker_pid": os.getpid()}
    runner = Runner(chapters, log=lines.append)
    # the client removed dead runs' work folders before the sweep; a worker on another host cannot
    # tell whether a work folder's process (on the client's or a third host) is alive
    runner.remove_stale = lambda: None
    try:
        outcomes = runner.run([chapter], profile, overrides, force=force)
    except Exception as exc:  # noqa: BLE001 - a usage problem found on the worker is this task's failure
        result["message"] = f"{type(exc).__name__}: {exc}"
        result["seconds"] = time.time() - start
        return result
    mine = [o for o in outcomes if o.chapter == chapter]
    failed = [o for o in outcomes if o.status == "failed"]
    result["seconds"] = time.time() - start
    if not mine or mine[0].status == "failed":
        which = mine[0] if mine else failed[0]
        result["message"] = (which.message if which.chapter == chapter
                             else f"upstream {which.chapter} failed: {which.message}")
        result["folder"] = str(which.folder)
        return result
    outcome = mine[0]
    record = RunRecord.load(outcome.folder / RUN_FILE)
    result.update(status=outcome.status, folder=str(outcome.folder), runtime_s=record.runtime_s,
                  claims={c["id"]: c["outcome"] for c in record.claims},
                  metrics={k: v for k, v in record.metrics.items() if v is None or isinstance(v, (int, float))})
    return result


def run_upstream(chapters: dict, names: list[str], profile: str, environ: dict[str, str]) -> dict:
    """The chapters the swept one needs, once, before its tasks (each task then finds them cached)."""
    os.environ.update(environ)
    lines: list[str] = []
    runner = Runner(chapters, log=lines.append)
    runner.remove_stale = lambda: None  # see run_task
    outcomes = runner.run(names, profile)
    failed = [f"{o.chapter}: {o.message}" for o in outcomes if o.status == "failed"]
    return {"failed": failed, "log": lines}


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

def _last_line(message: str) -> str:
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _environ() -> dict[str, str]:
    """What a worker needs to run as this process would: every EMBREPRO_* variable, the runs
    folder and the thread count made explicit (a remote worker may have other defaults)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("EMBREPRO_")}
    env["EMBREPRO_RUNS"] = str(runs_dir().resolve())
    env["EMBREPRO_THREADS"] = str(threads())
    env.setdefault("EMBREPRO_ROOT", str(project_root()))
    return env


@dataclass
class SweepResult:
    tasks: list[Task]
    results: list[dict]
    folder: Path
    table: Path
    figure: Path
    page: Path
    metric: str | None

    @property
    def failed(self) -> list[tuple[Task, dict]]:
        return [(t, r) for t, r in zip(self.tasks, self.results) if r["status"] == "failed"]


def sweep(chapter: str, profile: str, grid: dict[str, list[str]], seeds: int | None = None, *,
          scheduler: str | None = None, workers: int = DEFAULT_WORKERS, force: bool = False,
          threads_per_run: int | None = None, name: str | None = None, out: Path | None = None, metric: str | None = None,
          runner: Runner | None = None, command: str | None = None, stream=None) -> SweepResult:
    """Validate every task, run them on Dask, write the table, figure and page (see the module docstring)."""
    stream = stream or sys.stderr
    runner = runner or Runner(log=lambda line: None)
    waves = runner.plan([chapter], profile, {})  # unknown or broken chapter, needs, data: exit 2 here
    spec = runner.chapters[chapter]
    tasks = plan_tasks(spec, profile, grid, seeds)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if threads_per_run is not None and threads_per_run < 1:
        raise UsageError(f"--threads must be at least 1, got {threads_per_run}")
    kernel_threads = threads_per_run or threads()
    folder = Path(out) if out else sweep_folder(chapter, name or default_name(profile, grid, seeds))
    cores = os.cpu_count() or 1
    if scheduler is None and workers * kernel_threads > cores:
        print(f"note: {workers} workers x {kernel_threads} threads per kernel on {cores} cores: the kernels "
              f"share the cores (--threads 1 avoids it, but the thread count is part of the cache key)",
              file=stream)
    needed = {n for wave in waves for n in wave}
    chapters = {n: runner.chapters[n] for n in needed}
    environ = {**_environ(), "EMBREPRO_THREADS": str(kernel_threads)}
    runner.remove_stale()  # once here, not in the tasks: a task must not remove another's work folder

    results: list[dict | None] = [None] * len(tasks)
    log_lines: list[str] = []
    pointer = runs_dir() / chapter / f"latest-{profile}.json"
    kept_pointer = pointer.read_bytes() if pointer.is_file() else None
    try:
        with _cluster(scheduler, workers) as client:
            _submit(client, chapter, profile, tasks, waves, chapters, environ, force, results, log_lines, stream)
    finally:  # the book shows the chapter's run from before the sweep, not the sweep's last point
        _restore(pointer, kept_pointer)
    final = [r for r in results if r is not None]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.log").write_text("\n".join(log_lines) + ("\n" if log_lines else ""))
    frame = table(tasks, final, grid)
    table_path = folder / "sweep.csv"
    frame.to_csv(table_path, index=False)
    try:
        chosen = choose_metric(frame, metric)
    except UsageError as exc:  # found only now that the runs are done: say so, plot the default
        print(f"note: {exc}; plotting the default metric instead", file=stream)
        chosen = choose_metric(frame, None)
    figure_path = folder / "sweep.png"
    plot(frame, grid, chosen, figure_path, title=f"{chapter} ({profile} profile)")
    page_path = folder / "sweep.md"
    page_path.write_text(page_markdown(chapter, profile, frame, grid, chosen, command, figure_path.name))
    return SweepResult(tasks, final, folder, table_path, figure_path, page_path, chosen)


def _submit(client, chapter, profile, tasks, waves, chapters, environ, force, results, log_lines, stream):
    """The upstream chapters first (once), then every task; fills ``results`` and ``log_lines``."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    upstream = [n for wave in waves[:-1] for n in wave]
    upstream_failed = []
    if upstream:
        print(f"running (or finding cached) the chapters {chapter} needs: {', '.join(upstream)}", file=stream)
        done = client.submit(run_upstream, chapters, upstream, profile, environ, pure=False).result()
        log_lines += done["log"]
        upstream_failed = done["failed"]
        for line in upstream_failed:
            print(f"FAILED upstream {line}", file=stream)
    for task in tasks if upstream_failed else []:
        results[task.index] = {"status": "failed", "folder": "", "seconds": 0.0,
                               "message": f"upstream failed: {'; '.join(upstream_failed)}",
                               "claims": {}, "metrics": {}, "runtime_s": float("nan"), "log": []}
    if not upstream_failed:
        futures = {client.submit(run_task, chapters, chapter, profile, t.overrides, force, environ,
                                 pure=False, key=f"{chapter}-task-{t.index}-{time.time_ns()}"): t
                   for t in tasks}
        bar = tqdm(total=len(tasks), desc=f"sweep {chapter}", unit="task", file=stream)
        try:
            for future in as_completed(futures):
                task = futures.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker (KilledWorker) or a lost task
                    why = ("the worker process died while running it (Dask KilledWorker; not retried)"
                           if type(exc).__name__ == "KilledWorker" else
                           f"the task was lost ({type(exc).__name__}: {_last_line(exc) or 'no detail'})")
                    result = {"status": "failed", "folder": "", "seconds": float("nan"), "message": why,
                              "claims": {}, "metrics": {}, "runtime_s": float("nan"), "log": []}
                # gathered: let the worker forget it, or a worker that dies later makes Dask run it again
                future.release()
                results[task.index] = result
                log_lines += [f"[task {task.index}: {task.label()}] {line}" for line in result.get("log", [])]
                if result["status"] == "failed":
                    where = f"; {result['folder']}" if result["folder"] and "kept in" not in result["message"] else ""
                    bar.write(f"FAILED {task.label()}: {_last_line(result['message'])}{where}", file=stream)
                bar.update(1)
        finally:
            bar.close()


def _restore(pointer: Path, content: bytes | None) -> None:
    try:
        if content is None:
            pointer.unlink(missing_ok=True)
        else:
            tmp = pointer.with_name(f".{pointer.name}.tmp{os.getpid()}")
            tmp.write_bytes(content)
            os.replace(tmp, pointer)
    except OSError:
        pass  # a read-only runs folder: the runner could not have moved the pointer either


class _cluster:
    """A Dask client on ``scheduler``, or on a LocalCluster of ``workers`` processes (closed on exit)."""

    def __init__(self, scheduler: str | None, workers: int):
        self.scheduler, self.workers = scheduler, workers
        self.cluster = self.client = None

    def __enter__(self):
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
            return self.client
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=logging.ERROR)  # any free port
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False


# --------------------------------------------------------------------------------------------
# The table, the figure and the page
# --------------------------------------------------------------------------------------------

def table(tasks: list[Task], results: list[dict], grid: dict[str, list[str]]):
    """One row per task: grid values, seed, status, cache hit, times, claims' outcomes, metrics."""
    import pandas as pd

    claim_ids = list(dict.fromkeys(c for r in results for c in r["claims"]))
    metric_names = list(dict.fromkeys(m for r in results for m in r["metrics"]))
    rows = []
    for task, result in zip(tasks, results):
        row = {name: task.values.get(name, task.point.get(name)) for name in grid}
        row[SEED_PARAMETER] = task.values.get(SEED_PARAMETER)
        row["seed_index"] = task.seed_index
        row["status"] = result["status"]
        row["cache_hit"] = result["status"] == "hit"
        row["runtime_s"] = result["runtime_s"]          # the run's own time (for a hit: when it ran)
        row["wall_s"] = round(result["seconds"], 2) if isinstance(result["seconds"], float) else result["seconds"]
        row.update({f"claim:{c}": result["claims"].get(c, "") for c in claim_ids})
        row.update({f"metric:{m}": result["metrics"].get(m) for m in metric_names})
        row["folder"] = result["folder"]
        row["error"] = _last_line(result["message"]) if result["status"] == "failed" else ""
        rows.append(row)
    return pd.DataFrame(rows)


def choose_metric(frame, wanted: str | None) -> str | None:
    """``wanted`` (checked), else the first metric that varies over the successful rows, else the first."""
    metrics = [c[len("metric:"):] for c in frame.columns if c.startswith("metric:")]
    if wanted is not None:
        if wanted not in metrics:
            raise UsageError(f"--metric {wanted!r} is not a metric of these runs; they have: "
                             f"{', '.join(metrics) or 'none'}")
        return wanted
    ok = frame[frame["status"] != "failed"]
    for name in metrics:
        values = ok[f"metric:{name}"].dropna()
        if values.nunique() > 1:
            return name
    return metrics[0] if metrics else None


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


OUTCOME_COLOURS = {"reproduced": "#1b9e77", "partly reproduced": "#66a61e", "inconclusive": "#e6ab02",
                   "not reproduced": "#d95f02", "not assessable here": "#7570b3", "not assessed": "#999999"}


def plot(frame, grid: dict[str, list[str]], metric: str | None, path: Path, title: str = "") -> None:
    """Left: ``metric`` against the first grid parameter, one line per seed (and per value of the
    other grid parameters). Right: each claim's outcome at each point, one marker per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name = next(iter(grid), SEED_PARAMETER)
    xs = list(dict.fromkeys(frame[x_name].tolist()))
    numeric = _numeric(xs)
    position = {v: (v if numeric else i) for i, v in enumerate(xs)}
    claims = [c for c in frame.columns if c.startswith("claim:")]
    panels = 1 + bool(claims)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    others = [n for n in grid if n != x_name] + ([SEED_PARAMETER] if x_name != SEED_PARAMETER else [])
    ok = frame[frame["status"] != "failed"]
    if metric is not None and len(ok):
        for key, group in ok.groupby(others, dropna=False, sort=True) if others else [((), ok)]:
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{n}={v}" for n, v in zip(others, key)) or None
            group = group.sort_values(x_name, key=lambda s: s.map(position))
            ax.plot([position[v] for v in group[x_name]], group[f"metric:{metric}"], marker="o", label=label)
        if others:
            ax.legend(fontsize="small")
        ax.set_ylabel(metric)
    else:
        ax.text(0.5, 0.5, "no metric to plot (every task failed, or the chapter has no metrics)",
                ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xlabel(x_name)
    failed = frame[frame["status"] == "failed"]
    for v in failed[x_name]:
        ax.axvline(position[v], color="#d62728", alpha=0.3, linestyle="--")
    if len(failed):
        ax.plot([], [], color="#d62728", alpha=0.3, linestyle="--", label="a task failed here")
        ax.legend(fontsize="small")
    ax.set_xticks([position[v] for v in xs], [str(v) for v in xs])
    ax.set_title(f"{metric or 'metric'} over the sweep")
    if claims:
        ax = axes[0][1]
        seeds = sorted({s for s in frame["seed_index"].dropna()}) or [None]
        width = 0.6 * ((min(abs(a - b) for a, b in itertools.pairwise(sorted(position.values())))
                        if len(xs) > 1 else 1.0))
        seen = set()
        for row_i, claim in enumerate(claims):
            for _, row in frame.iterrows():
                outcome = row[claim] or ("task failed" if row["status"] == "failed" else "")
                if not outcome:
                    continue
                s = row["seed_index"]
                k = seeds.index(s) if s in seeds else 0
                offset = (k - (len(seeds) - 1) / 2) * width / max(1, len(seeds))
                colour = next((c for o, c in sorted(OUTCOME_COLOURS.items(), key=lambda kv: -len(kv[0]))
                               if outcome.startswith(o)),  # "not assessed (smoke)" is "not assessed"
                              "#d62728" if outcome == "task failed" else "#444444")
                ax.scatter(position[row[x_name]] + offset, row_i, color=colour, s=60,
                           marker="x" if outcome == "task failed" else "s",
                           label=outcome if outcome not in seen else None)
                seen.add(outcome)
        ax.set_yticks(range(len(claims)), [c[len("claim:"):] for c in claims])
        ax.set_ylim(-0.5, len(claims) - 0.5)
        ax.set_xlabel(x_name + (" (markers side by side: seeds)" if seeds != [None] else ""))
        ax.set_ylabel("claim")
        ax.set_xticks([position[v] for v in xs], [str(v) for v in xs])
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("claims' outcomes")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _md(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ") if value is not None else ""


def page_markdown(chapter: str, profile: str, frame, grid: dict[str, list[str]], metric: str | None,
                  command: str | None, figure: str) -> str:
    """A page a chapter can include: what was swept, the figure, and one row per task."""
    counts = frame["status"].value_counts().to_dict()
    claims = [c for c in frame.columns if c.startswith("claim:")]
    columns = list(grid) + [SEED_PARAMETER, "status"] + claims + ([f"metric:{metric}"] if metric else []) + ["runtime_s"]
    columns = list(dict.fromkeys(c for c in columns if c in frame.columns))
    lines = [
        f"## Sweep of `{chapter}` at the {profile} profile",
        "",
        f"{len(frame)} runs: " + ", ".join(f"{counts.get(s, 0)} {w}" for s, w in
                                            (("ran", "ran"), ("hit", "cache hits"), ("failed", "failed"))) + ".",
        "Each run is one `embrepro run` of the chapter with the parameters in its row; every metric",
        "is in `sweep.csv` beside this page.",
        "",
    ]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [f"![{chapter}: {metric or 'claims'} over the sweep]({figure})", "",
              "| " + " | ".join(c.replace("claim:", "").replace("metric:", "") for c in columns) + " |",
              "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_md(row[c]) for c in columns) + " |")
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        lines += ["", "Failed runs:", ""]
        for _, row in failed.iterrows():
            point = ", ".join(f"{n}={row[n]}" for n in list(grid) + [SEED_PARAMETER] if n in frame.columns)
            lines.append(f"- {point}: {_md(row['error'])}")
    return "\n".join(lines) + "\n"


def command_line(argv: list[str]) -> str:
    return "embrepro " + " ".join(shlex.quote(a) for a in argv)
