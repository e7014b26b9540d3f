"""The runner: executes chapters with papermill, validates parameters, caches by content.

A chapter is a notebook ``notebooks/<part>/<name>.ipynb`` with a spec ``<name>.yml`` beside it::

    title: "word2vec: ..."
    data: [corpus_gutenberg, analogy, wordsim]   # data sets read (their sha256 enter the cache key)
    artefacts: [vectors.kv]                      # files it leaves for other chapters
    needs:                                       # parameter -> another chapter's artefact
      word2vec_vectors: word2vec/vectors.kv
    timeout_s: {smoke: 120, book: 600, paper: 14400}   # per cell, positive integers
    seeds: [315, 116]                            # seed papers it reproduces (ids of papers.tsv)
    seeds_partly: []                             # seed papers it covers only in a section or remark
    parameters:                                  # checks a default value cannot express
      epochs: {min: 1}
      subsample: {gt: 0, lt: 1}
      corpus_tokens: {type: int, min: 1000, nullable: true}
      lexicons: {choices: [ppdb-xl, wordnet-synonyms]}   # for a list: each item
    profiles:                                    # papermill parameters per profile
      smoke: {corpus_tokens: 100000}
      book: {}                                   # the parameters cell holds the book values
      paper: {corpus_tokens: null}

Parameters are checked before any kernel starts: the type of the default (a parameter whose
default is ``None`` must declare ``type``), ``null`` only where the default is ``None`` or the
declaration says ``nullable: true``, no NaN or infinity for floats, and the declared ranges
(``min``/``max`` inclusive, ``gt``/``lt`` strict) and ``choices``. A chapter whose ``.yml`` or
notebook cannot be read is *broken*: :func:`discover` collects it with its problem, the other
chapters still run, and any command that touches it stops with exit status 2.

**The cache key** (:func:`key_components`) covers exactly: the notebook's cells (except a cell
tagged ``launch-setup``, :data:`LAUNCH_TAG`); the resolved
parameters (except those the runner fills with upstream paths); the source of every ``embrepro``
module the notebook imports, followed through the modules' own imports (absolute, relative,
aliased, inside functions; parent packages included), each by dotted name and sha256; the data
sets' checksums; the sha256 of every upstream artefact file the chapter reads (the upstream
run's *output*, so a forced upstream run with new output re-runs its dependants); the versions of
:data:`KEY_LIBRARIES`; the thread count (:func:`embrepro.paths.threads`); the precision of the
book's cached MiniLM encodings (:func:`embrepro.precision.default_precision`); and
:data:`KEY_FORMAT`. The runner's own source and the rest of the book wing are not in it: change
:data:`KEY_FORMAT` when the meaning of a key changes.

A run goes to ``_runs/<chapter>/<profile>-<key[:16]>/`` holding the executed notebook and
``result.json`` (a :class:`embrepro.book.record.RunRecord`, with the key's components and the
sha256 of each artefact). The folder appears only when the run succeeded (it is executed in a
``.tmp-*`` folder and renamed; of two identical runs finishing at once the first wins), so an
interrupted or failed run is never a hit; a failed run is kept as ``failed-<profile>-<time>/``.
A hit is served only after the folder is validated (the record parses, is the current format,
has this key, and its artefacts exist with their recorded sha256); otherwise one log line says
why and the chapter runs again. A hit writes nothing except the ``latest-<profile>.json``
pointer, which is skipped with a warning when the folder is read-only.

Kernels start with ``PYTHONHASHSEED=0`` and the thread counts of numeric libraries pinned to
:func:`embrepro.paths.threads` (not to ``--jobs``), so that a chapter gives the same metrics at
the same parameters on the same machine.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import hashlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml

from embrepro.book.record import (CHAPTER_FILE, PROFILES, RUN_FILE, RecordError, RunRecord,
                                  read_chapter_result, record_differences)
from embrepro.derived import process_alive, sha256_file
from embrepro.paths import project_root, threads
from embrepro.precision import default_precision

KEY_FORMAT = 2  # change when what a key means changes (the runner's source is not in the key)
KEY_LIBRARIES = ("torch", "gensim", "sentence-transformers", "transformers", "numpy", "scipy",
                 "scikit-learn", "faiss-cpu", "hnswlib", "papermill")
RESERVED = {"profile"}
# A chapter's set-up cell for Colab and Binder (embrepro.book.launch) carries this tag. It does
# nothing under the runner, so it is left out of the key: the notebook fingerprint and the package
# modules are computed as if it were absent (a notebook without it keeps its key).
LAUNCH_TAG = "launch-setup"
DEFAULT_TIMEOUT_S = {"smoke": 300, "book": 1800, "paper": 86400}
SPEC_KEYS = {"title", "data", "artefacts", "needs", "timeout_s", "parameters", "profiles", "seeds",
             "seeds_partly"}
RULE_KEYS = {"type", "nullable", "min", "max", "gt", "lt", "choices"}
RULE_TYPES = {"int": 0, "float": 0.0, "str": "", "bool": False}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "EMBREPRO_THREADS")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # src/embrepro
PACKAGE = PACKAGE_DIR.name


class UsageError(ValueError):
    """Bad input or a bad set-up, found before anything runs (the CLI exits with status 2)."""


class ParameterError(UsageError):
    """An unknown parameter name, or a value of the wrong type or out of range."""


class ChapterError(UsageError):
    """A chapter's ``.yml`` or notebook cannot be read; the message names the file."""


class NotWritable(UsageError):
    """A folder the runner must write to is read-only."""


class ChapterFailed(RuntimeError):
    """A notebook raised an error; its executed copy is kept for inspection."""


# --------------------------------------------------------------------------------------------
# Parameters: defaults from the notebook, declarations from the .yml
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


@dataclass(frozen=True)
class ParameterRule:
    """What a ``.yml`` declares about one parameter (``parameters: {name: {...}}``).

    ``type`` (int, float, str, bool; for a list parameter, its items' type) is required where the
    default is ``None``; ``nullable`` lets ``null`` through; ``min``/``max`` are inclusive and
    ``gt``/``lt`` strict bounds; ``choices`` the allowed values. For lists, every item is checked.
    """

    type: str | None = None
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple | None = None

    @classmethod
    def from_yaml(cls, name: str, raw, where: str) -> "ParameterRule":
        if not isinstance(raw, dict):
            raise ChapterError(f"{where}: parameters.{name} must be a mapping such as {{min: 1}}, got {raw!r}")
        unknown = set(raw) - RULE_KEYS
        if unknown:
            raise ChapterError(f"{where}: parameters.{name} has unknown keys {sorted(unknown)}; "
                               f"use {sorted(RULE_KEYS)}")
        if raw.get("type") is not None and raw["type"] not in RULE_TYPES:
            raise ChapterError(f"{where}: parameters.{name}.type must be one of {sorted(RULE_TYPES)}")
        for bound in ("min", "max", "gt", "lt"):
            value = raw.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ChapterError(f"{where}: parameters.{name}.{bound} must be a number, got {value!r}")
        choices = raw.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise ChapterError(f"{where}: parameters.{name}.choices must be a list")
        if not isinstance(raw.get("nullable", False), bool):
            raise ChapterError(f"{where}: parameters.{name}.nullable must be true or false")
        return cls(type=raw.get("type"), nullable=raw.get("nullable", False), min=raw.get("min"),
                   max=raw.get("max"), gt=raw.get("gt"), lt=raw.get("lt"),
                   choices=tuple(choices) if choices is not None else None)


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


def _check_leaf(name: str, value, template, rule: ParameterRule, where: str):
    """One scalar against the type of ``template`` (None: any type) and the rule's bounds."""
    if isinstance(value, str) and template is not None and not isinstance(template, str):
        value = _parse(value)
    if template is None or isinstance(template, (list, tuple)):
        ok = True
    elif isinstance(template, bool):
        ok = isinstance(value, bool)
    elif isinstance(template, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(template, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(template))
    if not ok:
        raise ParameterError(f"{where}: parameter {name!r} expects {_type_name(template)}, "
                             f"got {value!r} ({_type_name(value)})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"{where}: parameter {name!r} must be a finite number, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, fails, words in (("min", lambda v, b: v < b, "at least"), ("max", lambda v, b: v > b, "at most"),
                                    ("gt", lambda v, b: v <= b, "greater than"),
                                    ("lt", lambda v, b: v >= b, "less than")):
            limit = getattr(rule, bound)
            if limit is not None and fails(value, limit):
                raise ParameterError(f"{where}: parameter {name!r} must be {words} {limit}, got {value!r}")
    if rule.choices is not None and value not in rule.choices:
        raise ParameterError(f"{where}: parameter {name!r} must be one of {list(rule.choices)}, got {value!r}")
    return value


def _check_value(name: str, value, template, rule: ParameterRule, where: str):
    if isinstance(template, (list, tuple)):
        if isinstance(value, str):
            value = _parse(value)
        if not isinstance(value, (list, tuple)):
            raise ParameterError(f"{where}: parameter {name!r} expects a list (default {template!r}), "
                                 f"got {value!r} ({_type_name(value)})")
        item = template[0] if template else (RULE_TYPES[rule.type] if rule.type else None)
        return [_check_value(f"{name}[{i}]", v, item, rule, where) for i, v in enumerate(value)]
    if value is None or (isinstance(value, str) and template is not None and not isinstance(template, str)
                         and _parse(value) is None):
        raise ParameterError(f"{where}: parameter {name!r} may not be null")
    return _check_leaf(name, value, template, rule, where)


def coerce(name: str, value, default, where: str, rule: ParameterRule | None = None):
    """Check ``value`` against the type of ``default`` (or the declared type) and the declared
    rule; strings from the command line are parsed. Returns the value, floats as floats."""
    rule = rule or ParameterRule()
    template = default if default is not None else (RULE_TYPES[rule.type] if rule.type else None)
    nullable = default is None or rule.nullable
    is_null = value is None or (isinstance(value, str) and not isinstance(template, str) and value.strip()
                                in ("null", "None", "~"))
    if is_null:
        if not nullable:
            raise ParameterError(f"{where}: parameter {name!r} may not be null (default {default!r}; "
                                 f"declare `nullable: true` under parameters: in the .yml to allow it)")
        return None
    return _check_value(name, value, template, rule, where)


# --------------------------------------------------------------------------------------------
# Chapters
# --------------------------------------------------------------------------------------------

@dataclass
class ChapterSpec:
    """One chapter: its ``.yml`` and its notebook's parameter defaults (see the module docstring)."""

    name: str
    notebook: Path
    title: str
    data: list[str]
    artefacts: list[str]
    needs: dict[str, str]
    profiles: dict[str, dict]
    timeout_s: dict[str, int]
    defaults: dict = field(repr=False, default_factory=dict)
    rules: dict[str, ParameterRule] = field(repr=False, default_factory=dict)
    seeds: list[int] = field(default_factory=list)         # seed papers covered (not in the cache key)
    seeds_partly: list[int] = field(default_factory=list)  # seed papers covered in part

    @classmethod
    def load(cls, spec_path: Path) -> "ChapterSpec":
        """Read and check a chapter; :class:`ChapterError` names the file and the problem."""
        where = str(spec_path)
        try:
            spec = yaml.safe_load(spec_path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ChapterError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise ChapterError(f"{where}: must be a mapping of {sorted(SPEC_KEYS)}")
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            raise ChapterError(f"{where}: unknown keys {sorted(unknown)}; a spec has {sorted(SPEC_KEYS)}")
        for key in ("data", "artefacts"):
            if not isinstance(spec.get(key, []), list) or not all(isinstance(x, str) for x in spec.get(key, [])):
                raise ChapterError(f"{where}: {key} must be a list of names")
        for key in ("seeds", "seeds_partly"):  # seed-paper ids (papers.tsv); see embrepro.book.coverage
            ids = spec.get(key) or []
            if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                                    for x in ids):
                raise ChapterError(f"{where}: {key} must be a list of seed-paper ids (whole numbers), got {ids!r}")
            if len(set(ids)) != len(ids):
                raise ChapterError(f"{where}: {key} lists a seed paper twice: {ids!r}")
        both = set(spec.get("seeds") or []) & set(spec.get("seeds_partly") or [])
        if both:
            raise ChapterError(f"{where}: seed papers {sorted(both)} are in both seeds and seeds_partly")
        for key in ("needs", "timeout_s", "parameters", "profiles"):
            if not isinstance(spec.get(key) or {}, dict):
                raise ChapterError(f"{where}: {key} must be a mapping, not a {type(spec[key]).__name__}")
        profiles = spec.get("profiles") or {}
        unknown = set(profiles) - set(PROFILES)
        if unknown:
            raise ChapterError(f"{where}: unknown profiles {sorted(unknown)}; use {', '.join(PROFILES)}")
        for profile, values in profiles.items():
            if not isinstance(values or {}, dict):
                raise ChapterError(f"{where}: profiles.{profile} must be a mapping of parameter: value")
        timeouts = spec.get("timeout_s") or {}
        for profile, seconds in timeouts.items():
            if profile not in PROFILES:
                raise ChapterError(f"{where}: timeout_s names unknown profile {profile!r}")
            if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
                raise ChapterError(f"{where}: timeout_s.{profile} must be a positive whole number of "
                                   f"seconds, got {seconds!r}")
        needs = spec.get("needs") or {}
        for param, target in needs.items():
            if not isinstance(target, str) or "/" not in target:
                raise ChapterError(f"{where}: needs.{param} must be 'chapter/artefact', got {target!r}")

        notebook = spec_path.with_suffix(".ipynb")
        if not notebook.exists():
            raise ChapterError(f"{where} has no notebook {notebook.name} beside it")
        try:
            nb = json.loads(notebook.read_text())
            defaults = parameter_defaults(nb)
        except ValueError as exc:  # JSONDecodeError, ParameterError
            raise ChapterError(f"{notebook}: not a readable notebook: {exc}") from None
        except (KeyError, TypeError, SyntaxError) as exc:
            raise ChapterError(f"{notebook}: not a readable notebook ({type(exc).__name__}: {exc})") from None
        for param in needs:
            if param not in defaults:
                raise ChapterError(f"{where}: needs.{param} is not a parameter of {notebook.name}")
        rules = {}
        for name, raw in (spec.get("parameters") or {}).items():
            if name not in defaults:
                raise ChapterError(f"{where}: parameters.{name} is not a parameter of {notebook.name}")
            rules[name] = ParameterRule.from_yaml(name, raw, where)
        untyped = [n for n, v in defaults.items() if v is None and not (n in rules and rules[n].type)]
        if untyped:
            raise ChapterError(f"{where}: parameters whose default is None need a declared type "
                               f"(parameters: {{{untyped[0]}: {{type: int}}}}): {', '.join(untyped)}")
        try:
            for name, rule in rules.items():  # the defaults themselves must meet the declarations
                if defaults[name] is not None:
                    coerce(name, defaults[name], defaults[name], f"{notebook} parameters cell", rule)
        except ParameterError as exc:
            raise ChapterError(str(exc)) from None
        chapter = cls(
            name=spec_path.stem,
            notebook=notebook,
            title=spec.get("title", spec_path.stem),
            data=list(spec.get("data", [])),
            artefacts=list(spec.get("artefacts", [])),
            needs=dict(needs),
            profiles={p: dict(profiles.get(p) or {}) for p in PROFILES},
            timeout_s={**DEFAULT_TIMEOUT_S, **timeouts},
            defaults=defaults,
            rules=rules,
            seeds=list(spec.get("seeds") or []),
            seeds_partly=list(spec.get("seeds_partly") or []),
        )
        try:
            for profile in PROFILES:  # every profile's values are checked when the chapter is read
                chapter.resolve(profile)
        except ParameterError as exc:
            raise ChapterError(str(exc)) from None
        return chapter

    def resolve(self, profile: str, overrides: dict[str, str] | None = None) -> dict:
        """Parameters for a run: the cell's defaults, then the profile's values, then overrides."""
        if profile not in PROFILES:
            raise ParameterError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        params = dict(self.defaults)
        for source, values in ((f"{self.notebook.with_suffix('.yml')} profile {profile!r}", self.profiles[profile]),
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
                params[name] = coerce(name, value, self.defaults[name], source, self.rules.get(name))
        if "profile" in self.defaults:
            params["profile"] = profile
        return params


class Chapters(dict):
    """The chapters that load (name -> :class:`ChapterSpec`), and in ``broken`` those that do
    not (name -> the problem, naming the file)."""

    def __init__(self, *args, broken: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.broken = dict(broken or {})


def discover(root: Path | None = None) -> Chapters:
    """Every chapter under ``notebooks/``: a ``.yml`` spec with a notebook of the same name.

    A chapter that cannot be read does not stop the others: it goes to ``.broken`` with its
    problem (and two chapters with one name are both broken)."""
    root = root or project_root()
    chapters, broken, paths = Chapters(), {}, {}
    for spec_path in sorted((root / "notebooks").rglob("*.yml")):
        if "_scratch" in spec_path.parts or ".ipynb_checkpoints" in spec_path.parts:
            continue
        name = spec_path.stem
        if name in paths:
            broken[name] = f"{spec_path} and {paths[name]}: two chapters are called {name!r}"
            chapters.pop(name, None)
            continue
        paths[name] = spec_path
        try:
            chapters[name] = ChapterSpec.load(spec_path)
        except (ChapterError, OSError, UnicodeDecodeError) as exc:
            broken[name] = str(exc)
    chapters.broken = broken
    return chapters


# --------------------------------------------------------------------------------------------
# The content key
# --------------------------------------------------------------------------------------------

def module_file(dotted: str) -> Path | None:
    """The file of an ``embrepro`` module by dotted name: ``a/b.py`` or the package ``a/b/__init__.py``."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    if len(parts) > 1 and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _code_to_parse(source: str) -> str:
    """Notebook cell source as Python: IPython magics and shell escapes turned into calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with the notebook toolchain
        return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    return TransformerManager().transform_cell(source)


def imported_modules(source: str, module: str | None = None) -> set[str]:
    """Dotted names of the ``embrepro`` modules that ``source`` imports, anywhere in it.

    Covers ``import embrepro.x [as y]``, ``from embrepro import x [as y]`` (``x`` a module file or
    a package folder), ``from embrepro.x.y import z``, imports inside functions, relative imports
    (``from .data import f``, resolved against ``module``, the dotted name of the module whose
    source this is), and ``importlib.import_module("embrepro.x")`` with a literal name. Raises
    SyntaxError when the source does not parse."""
    tree = ast.parse(source)
    if module is None:
        package = PACKAGE
    else:
        path = module_file(module)
        package = module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    continue
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}"))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and node.args[0].value.split(".")[0] == PACKAGE
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.add(node.args[0].value)
    return {name for name in found if module_file(name) is not None}


def _science_modules() -> set[str]:
    """Every module of the package outside the book wing (the fallback when source cannot be parsed)."""
    names = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        rel = path.relative_to(PACKAGE_DIR).with_suffix("")
        if rel.parts[0] == "book":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names.add(".".join((PACKAGE, *parts)))
    return names


def package_modules(notebook_source: str | None = None) -> dict[str, str]:
    """The ``embrepro`` modules a chapter depends on, dotted name -> sha256 of the file.

    With ``notebook_source`` (the notebook's code cells joined): the modules it imports, followed
    through their own imports, with every parent package (importing ``embrepro.data.corpora``
    runs ``embrepro/__init__.py`` and ``embrepro/data/__init__.py``). Without it, or when the
    source does not parse, every module outside the book wing (a key that can only over-run)."""
    if notebook_source is None:
        todo = _science_modules()
    else:
        try:
            todo = imported_modules(notebook_source)
        except SyntaxError:
            todo = _science_modules()
    modules: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in modules:
            continue
        path = module_file(name)
        if path is None:
            continue
        modules[name] = sha256_file(path)
        parent = name.rpartition(".")[0]
        if parent:
            todo.add(parent)
        try:
            todo |= imported_modules(path.read_text(), name)
        except SyntaxError:
            pass  # the notebook will fail on it; its hash is in the key already
    return dict(sorted(modules.items()))


def package_fingerprint(notebook_source: str | None = None) -> str:
    """One hash of :func:`package_modules` (names and contents)."""
    return hashlib.sha256(json.dumps(package_modules(notebook_source), sort_keys=True).encode()).hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for lib in KEY_LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "absent"
    return versions


def _notebook_cells(path: Path) -> list[dict]:
    """The cells that define a chapter's run: every cell except one tagged :data:`LAUNCH_TAG`."""
    return [c for c in json.loads(path.read_text())["cells"]
            if LAUNCH_TAG not in c.get("metadata", {}).get("tags", [])]


def _notebook_fingerprint(path: Path) -> str:
    content = [(c["cell_type"], "".join(c["source"]), c.get("metadata", {}).get("tags", []))
               for c in _notebook_cells(path)]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def notebook_code(path: Path) -> str:
    """The notebook's code cells as one Python source (magics turned into calls)."""
    return "\n".join(_code_to_parse("".join(c["source"])) for c in _notebook_cells(path)
                     if c["cell_type"] == "code")


def key_components(spec: ChapterSpec, params: dict, upstream: dict[str, dict]) -> dict:
    """Everything a run's result depends on (see the module docstring); stored in result.json.

    ``upstream`` maps each ``needs`` parameter to ``{"from": "chapter/artefact", "sha256":
    {file: sha256}}`` for the artefact file and its side files (``vectors.kv.vectors.npy``)."""
    from embrepro.data import dataset_fingerprints

    return {
        "format": KEY_FORMAT,
        "notebook": _notebook_fingerprint(spec.notebook),
        "parameters": {k: v for k, v in sorted(params.items()) if k not in spec.needs},
        "package": package_modules(notebook_code(spec.notebook)),
        "data": dataset_fingerprints(spec.data),
        "upstream": upstream,
        "versions": library_versions(),
        "threads": threads(),
        "precision": default_precision(),
    }


def key_of(components: dict) -> str:
    return hashlib.sha256(json.dumps(components, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(spec: ChapterSpec, params: dict, upstream: dict[str, dict]) -> str:
    return key_of(key_components(spec, params, upstream))


def explain_change(old: dict, new: dict) -> list[str]:
    """What differs between two runs' key components, one phrase per input."""
    if not old:
        return ["the newest run records no key components (it predates them)"]
    reasons = []
    if old.get("format") != new.get("format"):
        reasons.append(f"key format {old.get('format')} -> {new.get('format')}")
    if old.get("notebook") != new.get("notebook"):
        reasons.append("notebook changed")

    def changed(section: str) -> list[str]:
        a, b = old.get(section) or {}, new.get(section) or {}
        out = []
        for name in sorted(set(a) | set(b)):
            if name not in a:
                out.append(f"{name} (new)")
            elif name not in b:
                out.append(f"{name} (no longer used)")
            elif a[name] != b[name]:
                out.append(name)
        return out

    params = []
    a, b = old.get("parameters") or {}, new.get("parameters") or {}
    for name in sorted(set(a) | set(b)):
        if a.get(name, "<unset>") != b.get(name, "<unset>"):
            params.append(f"{name}: {a.get(name, '<unset>')!r} -> {b.get(name, '<unset>')!r}")
    if params:
        reasons.append("parameters " + "; ".join(params))
    for section, label in (("package", "package modules"), ("data", "data sets"),
                           ("upstream", "upstream artefacts"), ("versions", "library versions")):
        names = changed(section)
        if names:
            reasons.append(f"{label} {', '.join(names)}")
    if old.get("threads") != new.get("threads"):
        reasons.append(f"threads {old.get('threads')} -> {new.get('threads')}")
    if old.get("precision") != new.get("precision"):
        reasons.append(f"encoding precision {old.get('precision', 'fp32')} -> {new.get('precision')}")
    return reasons or ["inputs unchanged, but the key differs"]


# --------------------------------------------------------------------------------------------
# Run folders
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


@dataclass
class Decision:
    """What ``run --dry-run`` says about one chapter: ``hit`` or ``run``, and why."""

    chapter: str
    profile: str
    action: str            # "hit" or "run"
    reasons: list[str]
    folder: Path | None = None


def runs_dir() -> Path:
    return Path(os.environ.get("EMBREPRO_RUNS", project_root() / "_runs"))


def run_folder(chapter: str, profile: str, key: str) -> Path:
    return runs_dir() / chapter / f"{profile}-{key[:16]}"


def latest_run(chapter: str, profile: str) -> Path | None:
    """The folder of the newest successful run of a chapter at a profile, if any."""
    pointer = runs_dir() / chapter / f"latest-{profile}.json"
    try:
        folder = runs_dir() / chapter / json.loads(pointer.read_text())["folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if (folder / RUN_FILE).exists() else None


def latest_record(chapter: str, profile: str) -> RunRecord | None:
    """The :class:`RunRecord` of the newest run at a profile; None if there is none or it is unreadable."""
    folder = latest_run(chapter, profile)
    if folder is None:
        return None
    try:
        return RunRecord.load(folder / RUN_FILE)
    except RecordError:
        return None


def expected_runtime(chapter: str, profile: str) -> float | None:
    """Seconds the chapter's last run at ``profile`` took: its newest run in ``_runs/`` (this
    machine, current code), else its recorded run ``results/<chapter>/<profile>.json``
    (``runtime_s``); None when there is neither."""
    record = latest_record(chapter, profile)
    if record is not None and math.isfinite(record.runtime_s):
        return float(record.runtime_s)
    try:
        seconds = float(json.loads((project_root() / "results" / chapter / f"{profile}.json").read_text())["runtime_s"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    return seconds if math.isfinite(seconds) else None


def longest_first(names: list[str], profile: str) -> list[str]:
    """``names`` in the order ``--jobs`` starts them: chapters with no known run time first (one
    never run here may be the longest, and a long chapter started last is what makes a parallel
    run slow), then by :func:`expected_runtime`, longest first; ties by name."""
    known = {n: expected_runtime(n, profile) for n in names}
    return sorted(names, key=lambda n: (known[n] is not None, -(known[n] or 0.0), n))


def artefact_hashes(folder: Path, artefacts: list[str]) -> dict[str, str]:
    """sha256 of each declared artefact and of its side files (``vectors.kv.vectors.npy``)."""
    hashes = {}
    for name in artefacts:
        for path in sorted(folder.glob(f"{name}*")):
            if path.is_file() and (path.name == name or path.name.startswith(name + ".")):
                hashes[path.name] = sha256_file(path)
    return hashes


def check_run(folder: Path, key: str, spec: ChapterSpec) -> str | None:
    """Why ``folder`` cannot serve as a hit for ``key`` (None when it can)."""
    if not (folder / RUN_FILE).exists():
        return "no run" if not folder.exists() else f"{RUN_FILE} is missing"
    try:
        record = RunRecord.load(folder / RUN_FILE, upgrade=False)
    except RecordError as exc:
        return str(exc)
    if record.cache_key != key:
        return f"{folder / RUN_FILE} records key {record.cache_key[:16]}, not {key[:16]}"
    if not (folder / f"{spec.name}.ipynb").exists():
        return f"the executed notebook {spec.name}.ipynb is missing"
    undeclared = [a for a in spec.artefacts if a not in record.artefacts]
    if undeclared:
        return f"no recorded hash for artefact {', '.join(undeclared)}"
    for name, expected in record.artefacts.items():
        path = folder / name
        if not path.is_file():
            return f"artefact {name} is missing"
        if sha256_file(path) != expected:
            return f"artefact {name} does not match its recorded sha256"
    return None


def writable(path: Path) -> bool:
    """Whether ``path`` (or, if it does not exist yet, its nearest existing parent) is writable."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def stale_work_folders(root: Path | None = None) -> list[Path]:
    """``.tmp-*`` run folders (and ``*.old<pid>`` leftovers of a forced run) whose process is gone."""
    root = root or runs_dir()
    stale = []
    for path in sorted(root.glob("*/.tmp-*")) + sorted(root.glob("*/*.old*")):
        if not path.is_dir():
            continue
        if path.name.startswith(".tmp-"):
            parts = path.name.split("-")
            pid = parts[-2] if len(parts) >= 5 else ""
        else:
            pid = path.name.rpartition(".old")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.append(path)
    return stale


@contextlib.contextmanager
def kernel_environment():
    """Environment variables for the kernels started inside the block: ``PYTHONHASHSEED=0``,
    every numeric library's thread count set to :func:`embrepro.paths.threads`, and
    ``EMBREPRO_RUNNER=1`` (a chapter's launch set-up cell then does nothing)."""
    n = str(threads())
    wanted = {"PYTHONHASHSEED": "0", "EMBREPRO_RUNNER": "1", **{var: n for var in THREAD_VARIABLES}}
    saved = {var: os.environ.get(var) for var in wanted}
    os.environ.update(wanted)
    try:
        yield wanted
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@contextlib.contextmanager
def kernel_channels():
    """Keyword arguments for papermill that make the kernel talk to the runner over Unix socket files
    in a private folder, not over TCP ports on localhost.

    With TCP, jupyter_client finds free ports by binding port 0 and closing the socket again; the
    kernel binds them a moment later. Two kernels started at about the same time by different
    processes (``--jobs``, a sweep's Dask workers) can be handed the same port, and one of them dies
    before it starts ("Address already in use"). Socket files in a folder of their own cannot collide.
    The folder is removed afterwards. Where there are no Unix sockets (Windows), TCP stays."""
    if os.name != "posix":
        yield {}
        return
    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="embrepro-kernel-")
    try:
        if len(folder) > 90:  # a socket's path must stay under about 104 bytes (macOS) or 108 (Linux)
            shutil.rmtree(folder, ignore_errors=True)
            folder = tempfile.mkdtemp(prefix="embrepro-kernel-", dir="/tmp")
        yield {"config": Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------

class Runner:
    """Runs chapters; see the module docstring. ``log`` receives one line per event."""

    def __init__(self, chapters: dict[str, ChapterSpec] | None = None, log=print):
        self.chapters = chapters if chapters is not None else discover()
        self.broken = getattr(self.chapters, "broken", {})
        self.log = log

    # -- planning: everything is checked before anything runs --------------------------------
    def plan(self, names: list[str], profile: str, overrides: dict[str, str]) -> list[list[str]]:
        """Waves of chapters to run: each wave needs only chapters of earlier waves."""
        broken = [n for n in names if n in self.broken]
        if broken:
            raise ChapterError("; ".join(f"chapter {n} is broken: {self.broken[n]}" for n in broken))
        unknown = [n for n in names if n not in self.chapters]
        if unknown:
            raise ParameterError(
                f"unknown chapter(s) {', '.join(unknown)}; chapters: {', '.join(self.chapters)}")
        try:
            threads()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for name in names:
            self.chapters[name].resolve(profile, overrides)  # raises ParameterError
        wanted: set[str] = set()

        def add(name: str, trail: tuple[str, ...]) -> None:
            if name in trail:
                raise UsageError(f"chapters need each other in a circle: {' -> '.join(trail + (name,))}")
            if name in self.broken:
                raise ChapterError(f"{trail[-1]} needs chapter {name}, which is broken: {self.broken[name]}")
            if name not in self.chapters:
                raise ParameterError(f"{trail[-1]} needs chapter {name!r}, which does not exist")
            wanted.add(name)
            for dep in self.chapters[name].needs.values():
                add(dep.split("/", 1)[0], trail + (name,))

        for name in names:
            add(name, ())
        for name in wanted:
            spec = self.chapters[name]
            for param, target in spec.needs.items():
                dep, artefact = target.split("/", 1)
                if artefact not in self.chapters[dep].artefacts:
                    raise ChapterError(f"{spec.notebook.with_suffix('.yml')}: needs {target}, but "
                                       f"{dep} does not declare the artefact {artefact}")
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
        if not any(self.chapters[n].data for n in names):
            return
        from embrepro.data import fetch, manifest

        for name in names:
            for entry in self.chapters[name].data:
                # a nested data set name ("beir/scifact") is a whole data set, not "data set/file"
                dataset, _, only = (entry, "", "") if entry in manifest().datasets else entry.partition("/")
                files = [only] if only else sorted(manifest().dataset(dataset).files)
                for filename in files:
                    fetch(dataset, filename)

    def _upstream(self, spec: ChapterSpec, folders: dict[str, Path]) -> tuple[dict, dict]:
        """Key components and parameter values for ``spec``'s needs, from upstream run folders."""
        upstream, paths = {}, {}
        for param, target in spec.needs.items():
            dep, artefact = target.split("/", 1)
            record = RunRecord.load(folders[dep] / RUN_FILE)
            files = {f: h for f, h in record.artefacts.items() if f == artefact or f.startswith(artefact + ".")}
            upstream[param] = {"from": target, "sha256": files}
            final = runs_dir() / spec.name  # the kernel's working folder is a sibling of the run folders
            paths[param] = os.path.relpath(folders[dep] / artefact, final / "run")
        return upstream, paths

    def explain(self, names: list[str] | None = None, profile: str = "book",
                overrides: dict[str, str] | None = None, force: bool = False) -> list[Decision]:
        """For each chapter (and the chapters it needs), ``hit`` or ``run`` and why. Runs nothing."""
        names = list(names or self.all_names())
        overrides = overrides or {}
        return self._explain(self.plan(names, profile, overrides), names, profile, overrides, force)

    def _explain(self, waves, names, profile, overrides, force) -> list[Decision]:
        decisions: dict[str, Decision] = {}
        folders: dict[str, Path] = {}
        for wave in waves:
            for name in wave:
                decisions[name] = self._decide(name, profile, overrides if name in names else {},
                                               decisions, folders, force and name in names)
        return list(decisions.values())

    def _decide(self, name, profile, overrides, decisions, folders, force) -> Decision:
        spec = self.chapters[name]
        params = spec.resolve(profile, overrides)
        pending = [t.split("/", 1)[0] for t in spec.needs.values()
                   if decisions[t.split("/", 1)[0]].action == "run"]
        if pending:
            return Decision(name, profile, "run",
                            [f"upstream {', '.join(sorted(set(pending)))} must run first (its output "
                             f"decides this chapter's key)"])
        upstream, paths = self._upstream(spec, folders)
        params.update(paths)
        components = key_components(spec, params, upstream)
        key = key_of(components)
        folder = run_folder(name, profile, key)
        problem = check_run(folder, key, spec)
        if problem is None and not force:
            folders[name] = folder
            return Decision(name, profile, "hit", [f"cached run {folder.name}"], folder)
        if force:
            return Decision(name, profile, "run", ["forced"], folder)
        if problem != "no run":
            return Decision(name, profile, "run", [f"cached run {folder.name} is not usable: {problem}"], folder)
        latest = latest_run(name, profile)
        if latest is None:
            return Decision(name, profile, "run", ["no earlier run"], folder)
        try:
            old = RunRecord.load(latest / RUN_FILE).key_components
        except RecordError as exc:
            return Decision(name, profile, "run", [f"the newest run cannot be read: {exc}"], folder)
        return Decision(name, profile, "run",
                        [f"against {latest.name}: {r}" for r in explain_change(old, components)], folder)

    def all_names(self) -> list[str]:
        """Every chapter, the broken ones included (so that running them all reports them)."""
        return sorted(set(self.chapters) | set(self.broken))

    def run(self, names: list[str] | None = None, profile: str = "book",
            overrides: dict[str, str] | None = None, jobs: int = 1, force: bool = False,
            progress=None) -> list[RunOutcome]:
        """Run (or find cached) ``names`` and the chapters they need, wave by wave; a failure stops
        after its wave. With ``jobs`` > 1 the chapters of a wave run in that many processes, the
        longest first (:func:`longest_first`). ``progress(outcome, done, total, elapsed_s)`` is
        called as each chapter finishes."""
        names = list(names or self.all_names())
        overrides = overrides or {}
        waves = self.plan(names, profile, overrides)
        decisions = self._explain(waves, names, profile, overrides, force)
        to_run = [d.chapter for d in decisions if d.action == "run"]
        read_only = sorted({str(runs_dir() / n) for n in to_run if not writable(runs_dir() / n)})
        if read_only:
            raise NotWritable(f"cannot write runs to {', '.join(read_only)} (read-only); make it writable "
                              f"or point EMBREPRO_RUNS at a writable folder")
        if to_run:
            self.remove_stale()
        jobs = max(1, jobs)
        outcomes: dict[str, RunOutcome] = {}
        total, started, count = sum(len(w) for w in waves), time.time(), [0]

        def finished(outcome: RunOutcome) -> RunOutcome:
            count[0] += 1
            if progress is not None:
                progress(outcome, count[0], total, time.time() - started)
            return outcome

        with kernel_environment():
            for wave in waves:
                def one(name: str) -> RunOutcome:
                    chapter_overrides = overrides if name in names else {}
                    return self.run_one(name, profile, chapter_overrides, outcomes, force and name in names)

                if jobs == 1 or len(wave) == 1:
                    results = []
                    for n in wave:
                        results.append(finished(one(n)))
                        outcomes[n] = results[-1]
                else:
                    # One process per concurrent chapter: papermill's kernel clients are not safe to
                    # drive from several threads of one process. Longest first: the pool starts
                    # them in the order submitted.
                    context = multiprocessing.get_context("spawn")
                    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                        futures = {pool.submit(_run_one_in_process, self.chapters, name, profile,
                                               overrides if name in names else {}, outcomes,
                                               force and name in names): name
                                   for name in longest_first(wave, profile)}
                        done = {futures[f]: finished(f.result()) for f in as_completed(futures)}
                    results = [done[n] for n in wave]
                    outcomes.update((o.chapter, o) for o in results)
                if any(o.status == "failed" for o in results):
                    break
        return list(outcomes.values())

    def remove_stale(self) -> None:
        """Remove work folders left by killed runs (their process is gone)."""
        for path in stale_work_folders():
            try:
                shutil.rmtree(path)
                self.log(f"removed {path} (left by a run whose process is gone)")
            except OSError as exc:
                self.log(f"could not remove {path}: {exc}")

    def run_one(self, name: str, profile: str, overrides: dict[str, str],
                done: dict[str, RunOutcome], force: bool = False) -> RunOutcome:
        spec = self.chapters[name]
        params = spec.resolve(profile, overrides)
        for target in spec.needs.values():
            dep = target.split("/", 1)[0]
            if done[dep].status == "failed":
                raise ChapterFailed(f"{name} needs {dep}, which failed")
        upstream, paths = self._upstream(spec, {dep: o.folder for dep, o in done.items()})
        params.update(paths)
        components = key_components(spec, params, upstream)
        key = key_of(components)
        folder = run_folder(name, profile, key)
        start = time.time()
        problem = None if force else check_run(folder, key, spec)
        if not force and problem is None:
            self._point_latest(name, profile, folder)
            self.log(f"[{name}:{profile}] cache hit {folder.name}")
            return RunOutcome(name, profile, key, "hit", folder, time.time() - start)
        replace = force
        if problem not in (None, "no run"):
            self.log(f"[{name}:{profile}] cached run {folder.name} not used ({problem}); running again")
            replace = True
        self.log(f"[{name}:{profile}] running ({', '.join(f'{k}={v!r}' for k, v in params.items())})")
        try:
            self._execute(spec, profile, params, key, components, folder, replace)
        except ChapterFailed as exc:
            self.log(f"[{name}:{profile}] FAILED: {exc}")
            return RunOutcome(name, profile, key, "failed", Path(str(exc).rsplit(" ", 1)[-1]),
                              time.time() - start, str(exc))
        seconds = time.time() - start
        self.log(f"[{name}:{profile}] done in {seconds:.1f} s -> {folder}")
        return RunOutcome(name, profile, key, "ran", folder, seconds)

    def _execute(self, spec: ChapterSpec, profile: str, params: dict, key: str, components: dict,
                 folder: Path, replace: bool = False) -> None:
        import papermill

        folder.parent.mkdir(parents=True, exist_ok=True)
        work = folder.parent / f".tmp-{profile}-{key[:16]}-{os.getpid()}-{time.time_ns()}"
        work.mkdir()
        output = work / f"{spec.name}.ipynb"
        started, t0 = _now(), time.time()
        try:
            with kernel_channels() as channels:
                papermill.execute_notebook(
                    str(spec.notebook), str(output), parameters=params, cwd=str(work),
                    kernel_name="python3", progress_bar=False, log_output=False,
                    execution_timeout=spec.timeout_s[profile], report_mode=False, **channels,
                )
            if not (work / CHAPTER_FILE).exists():
                raise RuntimeError("the notebook finished without calling Chapter.save()")
            chapter_side = read_chapter_result(work / CHAPTER_FILE)
            missing = [a for a in spec.artefacts if not (work / a).exists()]
            if missing:
                raise RuntimeError(f"the notebook did not write its artefacts: {', '.join(missing)}")
            record = RunRecord(
                **{k: v for k, v in chapter_side.items() if k != "runtime_s"},
                title=spec.title,
                status="ok",
                runtime_s=round(time.time() - t0, 2),
                notebook_runtime_s=round(chapter_side["runtime_s"], 2),
                cache_key=key,
                key_components=components,
                parameters=params,
                artefacts=artefact_hashes(work, spec.artefacts),
                threads=threads(),
                precision=components["precision"],
                cpu_count=os.cpu_count() or 1,
                versions=library_versions(),
                started=started,
                finished=_now(),
            )
            record.save(work / RUN_FILE)
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
        self._publish(spec.name, profile, work, folder, replace)
        self._point_latest(spec.name, profile, folder)

    def _publish(self, chapter: str, profile: str, work: Path, folder: Path, replace: bool) -> None:
        """Rename the finished work folder into place. Without ``replace``, a run folder that
        appeared meanwhile (an identical run that finished first) wins and ours is discarded."""
        if replace and folder.exists():  # --force or a damaged run: the new run replaces the old one
            old = folder.with_name(folder.name + f".old{os.getpid()}")
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            if folder.exists():
                raise FileExistsError(errno.EEXIST, "run folder exists", str(folder))
            os.replace(work, folder)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(work, ignore_errors=True)
            self.log(f"[{chapter}:{profile}] an identical run finished first; kept {folder.name}, "
                     f"discarded this one")

    def _point_latest(self, chapter: str, profile: str, folder: Path) -> None:
        pointer = folder.parent / f"latest-{profile}.json"
        tmp = pointer.with_name(f".{pointer.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps({"folder": folder.name}))
            os.replace(tmp, pointer)
        except OSError as exc:
            self.log(f"[{chapter}:{profile}] warning: could not update {pointer.name} ({exc.strerror or exc})")

    # -- determinism ---------------------------------------------------------------------------
    def determinism(self, names: list[str] | None = None, profile: str = "smoke") -> dict[str, list[str]]:
        """For each chapter: the newest cached run at the current key (made now if there is none)
        against a fresh forced run. Returns chapter -> differences (empty: deterministic); a
        chapter that fails is reported as a difference."""
        names = list(names or self.all_names())
        self.plan(names, profile, {})  # refuses unknown or broken chapters before anything runs
        report: dict[str, list[str]] = {}
        for name in names:
            first = {o.chapter: o for o in self.run([name], profile)}
            if first.get(name) is None or first[name].status == "failed":
                failed = [o for o in first.values() if o.status == "failed"]
                report[name] = [f"failed: {o.chapter}: {o.message}" for o in failed]
                continue
            cached = RunRecord.load(first[name].folder / RUN_FILE)
            again = {o.chapter: o for o in self.run([name], profile, force=True)}
            if again[name].status == "failed":
                report[name] = [f"failed: {again[name].message}"]
                continue
            report[name] = record_differences(cached, RunRecord.load(again[name].folder / RUN_FILE))
        return report


def _run_one_in_process(chapters, name, profile, overrides, done, force):
    runner = Runner(chapters, log=lambda line: print(line, flush=True))
    return runner.run_one(name, profile, overrides, done, force)


def main_exit_code(outcomes: list[RunOutcome]) -> int:
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `embrepro` command")
