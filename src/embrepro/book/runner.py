"""The runner: executes chapters with papermill, validates parameters, caches by content.

A chapter is a notebook ``notebooks/<part>/<name>.ipynb`` with a spec ``<name>.yml`` beside it::

    title: "word2vec: ..."
    data: [corpus_gutenberg, analogy, wordsim]   # data sets read (their sha256 enter the cache key)
    artefacts: [vectors.kv]                      # files it leaves for other chapters
    needs:                                       # parameter -> another chapter's artefact
      word2vec_vectors: word2vec/vectors.kv
    timeout_s: {smoke: 120, book: 600, paper: 14400}   # per cell
    profiles:                                    # papermill parameters per profile
      smoke: {corpus_tokens: 100000}
      book: {}                                   # the parameters cell holds the book values
      paper: {corpus_tokens: null}

A run goes to ``_runs/<chapter>/<profile>-<key>/`` where ``key`` hashes the notebook's cells, the
resolved parameters, the helper package's source, the data sets' checksums, the library versions
and the keys of the chapters it needs. The folder appears only when the run succeeded (it is
executed in a temporary folder and renamed), so an interrupted or failed run is never a cache
hit; a failed run is kept as ``_runs/<chapter>/failed-<profile>-<time>/`` for inspection.

``result.json`` in a run folder::

    {"chapter": "word2vec", "profile": "book", "cache_key": "3f2a...", "status": "ok",
     "parameters": {...}, "claims": [...], "metrics": {...},
     "runtime_s": 201.3, "notebook_runtime_s": 196.0, "peak_memory_mb": 1450.2,
     "device": "cpu", "threads": 2, "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", ...},
     "started": "2026-11-22T06:01:02Z", "finished": "2026-11-22T06:04:23Z"}
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml

from embrepro.paths import project_root

PROFILES = ("smoke", "book", "paper")
RUNNER_FORMAT = 1
KEY_LIBRARIES = ("torch", "gensim", "sentence-transformers", "transformers", "numpy", "scipy",
                 "scikit-learn", "papermill")
RESERVED = {"profile"}


class ParameterError(ValueError):
    """An unknown parameter name, or a value of the wrong type. Nothing has been run."""


class ChapterFailed(RuntimeError):
    """A notebook raised an error; its executed copy is kept for inspection."""


# --------------------------------------------------------------------------------------------
# Chapters and their parameters
# --------------------------------------------------------------------------------------------

def parameters_cell(notebook: dict) -> dict:
    """The cell tagged ``parameters``."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    raise ParameterError("the notebook has no cell tagged 'parameters'")


def parameter_defaults(notebook: dict) -> dict:
    """Names and default values assigned in the parameters cell (literals only)."""
    source = "".join(parameters_cell(notebook)["source"])
    defaults = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name):
                try:
                    defaults[target.id] = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise ParameterError(
                        f"parameter {target.id!r} must be a literal (number, string, bool, None, list)"
                    ) from exc
    return defaults


def _type_name(value) -> str:
    return "None" if value is None else type(value).__name__


def _parse(text: str):
    """A command-line value: YAML scalars and lists, plus numbers YAML 1.1 misses (``1e-3``)."""
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def coerce(name: str, value, default, where: str):
    """Check ``value`` against the type of ``default``; strings from the command line are parsed."""
    if isinstance(value, str) and not isinstance(default, str):
        value = _parse(value)
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        if ok and default:
            value = [coerce(f"{name}[{i}]", item, default[0], where) for i, item in enumerate(value)]
        value = list(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ParameterError(
            f"{where}: parameter {name!r} expects {_type_name(default)} (default {default!r}), "
            f"got {value!r} ({_type_name(value)})"
        )
    return value


@dataclass
class ChapterSpec:
    name: str
    notebook: Path
    title: str
    data: list[str]
    artefacts: list[str]
    needs: dict[str, str]
    profiles: dict[str, dict]
    timeout_s: dict[str, int]
    defaults: dict = field(repr=False, default_factory=dict)

    @classmethod
    def load(cls, spec_path: Path) -> "ChapterSpec":
        spec = yaml.safe_load(spec_path.read_text()) or {}
        notebook = spec_path.with_suffix(".ipynb")
        if not notebook.exists():
            raise FileNotFoundError(f"{spec_path} has no notebook {notebook.name} beside it")
        nb = json.loads(notebook.read_text())
        profiles = spec.get("profiles", {})
        unknown = set(profiles) - set(PROFILES)
        if unknown:
            raise ParameterError(f"{spec_path}: unknown profiles {sorted(unknown)}; use {PROFILES}")
        return cls(
            name=spec_path.stem,
            notebook=notebook,
            title=spec.get("title", spec_path.stem),
            data=list(spec.get("data", [])),
            artefacts=list(spec.get("artefacts", [])),
            needs=dict(spec.get("needs", {})),
            profiles={p: dict(profiles.get(p) or {}) for p in PROFILES},
            timeout_s={**{"smoke": 300, "book": 1800, "paper": 86400}, **spec.get("timeout_s", {})},
            defaults=parameter_defaults(nb),
        )

    def resolve(self, profile: str, overrides: dict[str, str] | None = None) -> dict:
        """Parameters for a run: the cell's defaults, then the profile's values, then overrides."""
        if profile not in PROFILES:
            raise ParameterError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        params = dict(self.defaults)
        for source, values in ((f"{self.name}.yml profile {profile!r}", self.profiles[profile]),
                               ("command line", overrides or {})):
            for name, value in values.items():
                if name not in self.defaults:
                    known = ", ".join(sorted(self.defaults))
                    raise ParameterError(
                        f"{source}: {self.name} has no parameter {name!r}. Its parameters: {known}")
                if name in RESERVED and source == "command line":
                    raise ParameterError(f"set the profile with --profile, not -p {name}=...")
                if name in self.needs and source == "command line":
                    raise ParameterError(f"{name!r} is provided by the runner from {self.needs[name]}")
                params[name] = coerce(name, value, self.defaults[name], source)
        if "profile" in self.defaults:
            params["profile"] = profile
        return params


def discover(root: Path | None = None) -> dict[str, ChapterSpec]:
    """Every chapter under ``notebooks/``: a ``.yml`` spec with a notebook of the same name."""
    root = root or project_root()
    chapters = {}
    for spec_path in sorted((root / "notebooks").rglob("*.yml")):
        if "_scratch" in spec_path.parts or ".ipynb_checkpoints" in spec_path.parts:
            continue
        spec = ChapterSpec.load(spec_path)
        if spec.name in chapters:
            raise ValueError(f"two chapters are called {spec.name!r}")
        chapters[spec.name] = spec
    return chapters


# --------------------------------------------------------------------------------------------
# The content key
# --------------------------------------------------------------------------------------------

def _notebook_fingerprint(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    content = [(c["cell_type"], "".join(c["source"]), c.get("metadata", {}).get("tags", [])) for c in cells]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


_EMBREPRO_IMPORT = re.compile(r"^\s*(?:from\s+embrepro(?:\.(\w+))?\s+import\s+([\w, ()]+)|import\s+embrepro\.(\w+))",
                              re.MULTILINE)


def _imported_modules(source: str, package: Path) -> set[str]:
    """Names of the embrepro modules a piece of source imports (``from embrepro import data``,
    ``from embrepro.claims import ...``, ``import embrepro.models``)."""
    found = set()
    for submodule, names, plain in _EMBREPRO_IMPORT.findall(source):
        if submodule or plain:
            found.add(submodule or plain)
        else:  # from embrepro import a, b
            found.update(n.strip() for n in names.replace("(", "").replace(")", "").split(",")
                         if (package / f"{n.strip()}.py").exists())
    return found


def package_fingerprint(notebook_source: str | None = None) -> str:
    """A hash of the helper-package source a chapter depends on.

    With ``notebook_source``, only the modules the notebook imports, followed through their own
    ``embrepro`` imports, plus ``runner.py``, ``paths.py`` and ``__init__.py``; without it, every
    module. Editing a module re-runs only the chapters that use it.
    """
    package = Path(__file__).resolve().parent.parent
    if notebook_source is None:
        modules = {p.stem for p in package.glob("*.py")}
    else:
        modules, todo = {"runner", "paths", "__init__"}, _imported_modules(notebook_source, package)
        while todo:
            name = todo.pop()
            if name in modules or not (package / f"{name}.py").exists():
                continue
            modules.add(name)
            todo |= _imported_modules((package / f"{name}.py").read_text(), package)
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update((package / f"{name}.py").read_bytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for lib in KEY_LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "absent"
    return versions


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def cache_key(spec: ChapterSpec, params: dict, dependency_keys: dict[str, str]) -> str:
    from embrepro.data import dataset_fingerprints

    content = {
        "format": RUNNER_FORMAT,
        "notebook": _notebook_fingerprint(spec.notebook),
        "parameters": {k: v for k, v in sorted(params.items()) if k not in spec.needs},
        "package": package_fingerprint(_notebook_code(spec.notebook)),
        "data": dataset_fingerprints(spec.data),
        "needs": dependency_keys,
        "versions": library_versions(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

@dataclass
class RunOutcome:
    chapter: str
    profile: str
    key: str
    status: str            # "hit", "ran" or "failed"
    folder: Path
    seconds: float
    message: str = ""


def runs_dir() -> Path:
    return Path(os.environ.get("EMBREPRO_RUNS", project_root() / "_runs"))


def run_folder(chapter: str, profile: str, key: str) -> Path:
    return runs_dir() / chapter / f"{profile}-{key[:16]}"


def latest_run(chapter: str, profile: str) -> Path | None:
    """The folder of the newest successful run of a chapter at a profile, if any."""
    pointer = runs_dir() / chapter / f"latest-{profile}.json"
    if not pointer.exists():
        return None
    folder = runs_dir() / chapter / json.loads(pointer.read_text())["folder"]
    return folder if (folder / "result.json").exists() else None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Runner:
    """Runs chapters; see the module docstring. ``log`` receives one line per event."""

    def __init__(self, chapters: dict[str, ChapterSpec] | None = None, log=print):
        self.chapters = chapters if chapters is not None else discover()
        self.log = log

    # -- planning: everything is checked before anything runs --------------------------------
    def plan(self, names: list[str], profile: str, overrides: dict[str, str]) -> list[list[str]]:
        """Waves of chapters to run: each wave needs only chapters of earlier waves."""
        unknown = [n for n in names if n not in self.chapters]
        if unknown:
            raise ParameterError(
                f"unknown chapter(s) {', '.join(unknown)}; chapters: {', '.join(self.chapters)}")
        for name in names:
            self.chapters[name].resolve(profile, overrides)  # raises ParameterError
        wanted: set[str] = set()

        def add(name: str, trail: tuple[str, ...]) -> None:
            if name in trail:
                raise ValueError(f"chapters need each other in a circle: {' -> '.join(trail + (name,))}")
            if name not in self.chapters:
                raise ParameterError(f"{trail[-1]} needs chapter {name!r}, which does not exist")
            wanted.add(name)
            for dep in self.chapters[name].needs.values():
                add(dep.split("/", 1)[0], trail + (name,))

        for name in names:
            add(name, ())
        self.preflight_data(sorted(wanted))
        waves, done = [], set()
        while wanted - done:
            wave = sorted(n for n in wanted - done
                          if all(d.split("/", 1)[0] in done for d in self.chapters[n].needs.values()))
            waves.append(wave)
            done.update(wave)
        return waves

    def preflight_data(self, names: list[str]) -> None:
        """Find and verify every data file the chapters declare, before any kernel starts."""
        from embrepro.data import fetch, manifest

        for name in names:
            for entry in self.chapters[name].data:
                # a nested data set name ("beir/scifact") is a whole data set, not "data set/file"
                dataset, _, only = (entry, "", "") if entry in manifest().datasets else entry.partition("/")
                files = [only] if only else sorted(manifest().dataset(dataset).files)
                for filename in files:
                    fetch(dataset, filename)

    def run(self, names: list[str] | None = None, profile: str = "book",
            overrides: dict[str, str] | None = None, jobs: int = 1, force: bool = False) -> list[RunOutcome]:
        names = list(names or self.chapters)
        overrides = overrides or {}
        waves = self.plan(names, profile, overrides)
        jobs = max(1, jobs)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "EMBREPRO_THREADS"):
            os.environ[var] = str(threads)
        outcomes: dict[str, RunOutcome] = {}
        for wave in waves:
            def one(name: str) -> RunOutcome:
                chapter_overrides = overrides if name in names else {}
                return self.run_one(name, profile, chapter_overrides, outcomes, force and name in names)

            if jobs == 1 or len(wave) == 1:
                results = [one(n) for n in wave]
            else:
                # One process per concurrent chapter: papermill's kernel clients are not safe to
                # drive from several threads of one process.
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                    futures = [pool.submit(_run_one_in_process, self.chapters, name, profile,
                                           overrides if name in names else {}, outcomes,
                                           force and name in names) for name in wave]
                    results = [f.result() for f in futures]
            for outcome in results:
                outcomes[outcome.chapter] = outcome
            failed = [o for o in results if o.status == "failed"]
            if failed:
                break
        return list(outcomes.values())

    def run_one(self, name: str, profile: str, overrides: dict[str, str],
                done: dict[str, RunOutcome], force: bool = False) -> RunOutcome:
        spec = self.chapters[name]
        params = spec.resolve(profile, overrides)
        dep_keys = {}
        for param, target in spec.needs.items():
            dep, artefact = target.split("/", 1)
            dep_outcome = done[dep]
            if dep_outcome.status == "failed":
                raise ChapterFailed(f"{name} needs {dep}, which failed")
            dep_keys[param] = dep_outcome.key
            final = run_folder(name, profile, "x" * 16).parent  # _runs/<name>
            params[param] = os.path.relpath(dep_outcome.folder / artefact, final / "run")
        key = cache_key(spec, params, dep_keys)
        folder = run_folder(name, profile, key)
        start = time.time()
        if (folder / "result.json").exists() and not force:
            self._point_latest(name, profile, folder)
            self.log(f"[{name}:{profile}] cache hit {folder.name}")
            return RunOutcome(name, profile, key, "hit", folder, time.time() - start)
        self.log(f"[{name}:{profile}] running ({', '.join(f'{k}={v!r}' for k, v in params.items())})")
        try:
            self._execute(spec, profile, params, key, folder, force)
        except ChapterFailed as exc:
            self.log(f"[{name}:{profile}] FAILED: {exc}")
            return RunOutcome(name, profile, key, "failed", Path(str(exc).rsplit(" ", 1)[-1]),
                              time.time() - start, str(exc))
        seconds = time.time() - start
        self.log(f"[{name}:{profile}] done in {seconds:.1f} s -> {folder}")
        return RunOutcome(name, profile, key, "ran", folder, seconds)

    def _execute(self, spec: ChapterSpec, profile: str, params: dict, key: str, folder: Path,
                 force: bool = False) -> None:
        import papermill

        folder.parent.mkdir(parents=True, exist_ok=True)
        work = folder.parent / f".tmp-{profile}-{key[:16]}-{os.getpid()}-{time.time_ns()}"
        work.mkdir()
        output = work / f"{spec.name}.ipynb"
        started, t0 = _now(), time.time()
        try:
            papermill.execute_notebook(
                str(spec.notebook), str(output), parameters=params, cwd=str(work),
                kernel_name="python3", progress_bar=False, log_output=False,
                execution_timeout=spec.timeout_s[profile], report_mode=False,
            )
            chapter_result = work / "chapter-result.json"
            if not chapter_result.exists():
                raise RuntimeError("the notebook finished without calling Chapter.save()")
            record = json.loads(chapter_result.read_text())
            missing = [a for a in spec.artefacts if not (work / a).exists()]
            if missing:
                raise RuntimeError(f"the notebook did not write its artefacts: {', '.join(missing)}")
        except BaseException as exc:  # keep the executed notebook of any failure or interruption
            failed = folder.parent / f"failed-{profile}-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-{key[:8]}"
            os.replace(work, failed)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self.log(f"[{spec.name}:{profile}] interrupted; partial notebook kept in {failed}")
                raise
            reason = getattr(exc, "ename", None) or type(exc).__name__
            detail = getattr(exc, "evalue", None) or str(exc).strip().splitlines()[-1:] or [""]
            detail = detail if isinstance(detail, str) else detail[0]
            raise ChapterFailed(f"{reason}: {detail}; executed notebook kept in {failed}") from exc
        result = {
            "chapter": spec.name,
            "title": spec.title,
            "profile": profile,
            "cache_key": key,
            "status": "ok",
            "parameters": params,
            "claims": record.get("claims", []),
            "metrics": record.get("metrics", {}),
            "runtime_s": round(time.time() - t0, 2),
            "notebook_runtime_s": round(record.get("runtime_s", float("nan")), 2),
            "peak_memory_mb": round(record.get("peak_memory_mb", float("nan")), 1),
            "device": record.get("device", "cpu"),
            "threads": int(os.environ.get("EMBREPRO_THREADS", "0")) or os.cpu_count(),
            "cpu_count": os.cpu_count(),
            "versions": library_versions(),
            "started": started,
            "finished": _now(),
        }
        (work / "result.json").write_text(json.dumps(result, indent=2, default=str))
        if folder.exists() and not force:  # a concurrent identical run finished first: keep that one
            shutil.rmtree(work)
        else:
            if folder.exists():  # --force: the new run replaces the old one
                old = folder.with_name(folder.name + f".old{os.getpid()}")
                os.replace(folder, old)
                shutil.rmtree(old)
            os.replace(work, folder)
        self._point_latest(spec.name, profile, folder)

    @staticmethod
    def _point_latest(chapter: str, profile: str, folder: Path) -> None:
        pointer = folder.parent / f"latest-{profile}.json"
        tmp = pointer.with_name(pointer.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"folder": folder.name}))
        os.replace(tmp, pointer)


def _run_one_in_process(chapters, name, profile, overrides, done, force):
    runner = Runner(chapters, log=lambda line: print(line, flush=True))
    return runner.run_one(name, profile, overrides, done, force)


def main_exit_code(outcomes: list[RunOutcome]) -> int:
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `embrepro` command")
