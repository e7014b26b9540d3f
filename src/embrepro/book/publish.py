"""Publishing the book from recorded runs: the runs bundle, its pointer, and the "nothing to run" check.

Executed notebooks (with outputs) never go into git. The published book is built from the runs
that ``results/<chapter>/<profile>.json`` records, carried as a release asset:

1. ``embrepro bundle write --tag TAG`` (the maintainer, after ``embrepro record``): for every
   chapter, the run folder in the runner's cache whose key ``results/`` records; its
   ``result.json``, ``chapter-result.json`` and executed notebook go into one ``.tar.gz`` with a
   ``MANIFEST.json`` (chapter, folder, cache key, sha256 of each file). Artefacts (vectors) are left
   out: the book does not need them. It writes the pointer :data:`POINTER`
   (``{"tag", "asset", "sha256", "profile", "chapters", "environment"}``: the environment the runs
   were made in, which the workflow reproduces), the one small file that goes into git;
   the archive is attached to the GitHub release ``TAG`` (``gh release create TAG ARCHIVE``).
2. ``embrepro bundle restore ARCHIVE`` (the workflow, after downloading the asset): checks the
   archive's sha256 against the pointer, every file against the manifest, and every run's cache key
   against ``results/``; then lays the runs out as run folders (``_runs/`` or ``EMBREPRO_RUNS``)
   with their ``latest-<profile>.json`` pointers.
3. ``embrepro bundle check``: computes each chapter's cache key as the runner would (notebook,
   parameters, package modules, data checksums, upstream artefact hashes, library versions,
   threads, ...) without reading any data file, and fails naming every chapter whose restored run
   is not the current one, and why. ``embrepro book`` never executes a notebook; this check makes
   sure the book it builds shows what the repository's chapters compute.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

from embrepro.book.record import CHAPTER_FILE, RUN_FILE, RecordError, RunRecord
from embrepro.book.runner import (Runner, UsageError, discover, explain_change, key_components, key_of,
                                  latest_run, run_folder, runs_dir)
from embrepro.derived import sha256_file
from embrepro.paths import project_root

POINTER = "book/published-runs.json"
BUNDLE_FORMAT = 1
MANIFEST = "MANIFEST.json"


class BundleError(UsageError):
    """A bundle that cannot be written, trusted or restored; the message says what to do."""


def _recorded_key(root: Path, chapter: str, profile: str) -> str:
    path = root / "results" / chapter / f"{profile}.json"
    if not path.exists():
        raise BundleError(f"{chapter} has no recorded {profile}-profile run ({path} is missing): "
                          f"`embrepro record {chapter} --profile {profile}` first")
    return RunRecord.load(path).cache_key


def recorded_environment(root: Path, profile: str, names: list[str]) -> dict:
    """The environment the recorded runs share and their keys hold (Python version, threads,
    encoding precision): the workflow sets it up (``python``) or exports it (``EMBREPRO_THREADS``,
    ``EMBREPRO_PRECISION``) so that ``bundle check`` computes the same keys."""
    seen: dict[str, set] = {"python": set(), "threads": set(), "precision": set()}
    for name in names:
        components = RunRecord.load(root / "results" / name / f"{profile}.json").key_components
        seen["python"].add(components.get("versions", {}).get("python"))
        seen["threads"].add(components.get("threads"))
        seen["precision"].add(components.get("precision", "fp32"))
    mixed = {k: sorted(map(str, v)) for k, v in seen.items() if len(v) != 1}
    if mixed:
        raise BundleError("the recorded runs were made in different environments ("
                          + "; ".join(f"{k}: {', '.join(v)}" for k, v in mixed.items())
                          + "): record them again in one environment")
    return {k: next(iter(v)) for k, v in seen.items()}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(output: Path, profile: str = "book", tag: str | None = None, root: Path | None = None,
                 pointer: bool = True) -> dict:
    """Write the bundle of the recorded runs (see the module docstring); returns the pointer."""
    root = Path(root or project_root())
    chapters = discover(root)
    manifest: dict = {"format": BUNDLE_FORMAT, "profile": profile, "chapters": {}}
    members: list[tuple[str, bytes]] = []
    problems = []
    for name in sorted(chapters):
        key = _recorded_key(root, name, profile)
        folder = run_folder(name, profile, key)
        files = [f for f in (RUN_FILE, CHAPTER_FILE, f"{name}.ipynb") if (folder / f).is_file()]
        if RUN_FILE not in files or f"{name}.ipynb" not in files:
            problems.append(f"{name}: the recorded run {folder.name} is not in {folder.parent}")
            continue
        if RunRecord.load(folder / RUN_FILE).cache_key != key:
            problems.append(f"{name}: {folder / RUN_FILE} is not the run results/ records")
            continue
        entry = {"folder": folder.name, "cache_key": key, "files": {}}
        for f in files:
            data = (folder / f).read_bytes()
            entry["files"][f] = _sha256_bytes(data)
            members.append((f"runs/{name}/{folder.name}/{f}", data))
        manifest["chapters"][name] = entry
    if problems:
        raise BundleError("cannot bundle the recorded runs:\n  " + "\n  ".join(problems)
                          + f"\nRun `embrepro run --profile {profile}` where the recorded runs were made "
                            "(each recorded key must be in the runner's cache), or record the runs again.")
    environment = recorded_environment(root, profile, sorted(chapters))
    members.insert(0, (MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode()))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, data in members:  # fixed order, times and owners: the same runs give the same archive
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(output, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    result = {"tag": tag or f"runs-{time.strftime('%Y%m%d')}", "asset": output.name,
              "sha256": sha256_file(output), "profile": profile, "chapters": len(manifest["chapters"]),
              "environment": environment}
    if pointer:
        (root / POINTER).parent.mkdir(parents=True, exist_ok=True)
        (root / POINTER).write_text(json.dumps(result, indent=1) + "\n")
    return result


def read_pointer(root: Path | None = None) -> dict:
    path = Path(root or project_root()) / POINTER
    if not path.exists():
        raise BundleError(f"{path} is missing: no bundle of recorded runs has been published. Write one with "
                          "`embrepro bundle write --tag TAG` and attach it to the GitHub release TAG.")
    pointer = json.loads(path.read_text())
    missing = [k for k in ("tag", "asset", "sha256", "profile") if k not in pointer]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}")
    return pointer


def restore_bundle(archive: Path, root: Path | None = None, sha256: str | None = None,
                   log=print) -> list[str]:
    """Check the archive and lay its runs out as run folders; returns the chapters restored."""
    root = Path(root or project_root())
    archive = Path(archive)
    expected = sha256 or read_pointer(root)["sha256"]
    if not archive.is_file():
        raise BundleError(f"{archive} does not exist (download the release asset the pointer {POINTER} names)")
    actual = sha256_file(archive)
    if actual != expected:
        raise BundleError(f"{archive} has sha256 {actual}, but {POINTER} expects {expected}: the download is "
                          "corrupt or from another release; nothing was restored")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            files = {}
            for info in tar.getmembers():
                if not info.isfile() or info.name.startswith("/") or ".." in Path(info.name).parts:
                    raise BundleError(f"{archive}: unexpected member {info.name!r}")
                files[info.name] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} cannot be read as a .tar.gz ({exc})") from None
    try:
        manifest = json.loads(files.pop(MANIFEST))
    except (KeyError, ValueError):
        raise BundleError(f"{archive} has no readable {MANIFEST}") from None
    profile = manifest.get("profile")
    problems = []
    wanted = set(discover(root))
    held = set(manifest.get("chapters", {}))
    if wanted - held:
        problems.append(f"no run of {', '.join(sorted(wanted - held))} in the bundle")
    listed = set()
    for name, entry in sorted(manifest.get("chapters", {}).items()):
        for f, digest in entry["files"].items():
            member = f"runs/{name}/{entry['folder']}/{f}"
            listed.add(member)
            if member not in files:
                problems.append(f"{member} is missing")
            elif _sha256_bytes(files[member]) != digest:
                problems.append(f"{member} does not match its sha256 in {MANIFEST}")
        if name in wanted:
            recorded = _recorded_key(root, name, profile)
            if entry["cache_key"] != recorded:
                problems.append(f"{name}: the bundle holds run {entry['cache_key'][:16]}, but results/{name}/"
                                f"{profile}.json records {recorded[:16]}: write and publish a new bundle")
    extra = set(files) - listed
    if extra:
        problems.append(f"files not in {MANIFEST}: {', '.join(sorted(extra)[:5])}")
    if problems:
        raise BundleError(f"{archive} cannot be trusted; nothing was restored:\n  " + "\n  ".join(problems))
    restored = []
    for name, entry in sorted(manifest["chapters"].items()):
        if name not in wanted:
            continue
        folder = runs_dir() / name / entry["folder"]
        folder.mkdir(parents=True, exist_ok=True)
        for f in entry["files"]:
            tmp = folder / f".{f}.restore{os.getpid()}"
            tmp.write_bytes(files[f"runs/{name}/{entry['folder']}/{f}"])
            os.replace(tmp, folder / f)
        (folder.parent / f"latest-{profile}.json").write_text(json.dumps({"folder": folder.name}))
        restored.append(name)
    log(f"restored {len(restored)} {profile}-profile runs into {runs_dir()}")
    return restored


class _KeysOnly(Runner):
    """The runner's planning and keys without touching any data file."""

    def preflight_data(self, names):  # noqa: D401 - the check reads the manifest only
        return None


def stale_runs(profile: str = "book", root: Path | None = None) -> dict[str, list[str]]:
    """Chapter -> why its newest run is not the one the runner would serve now (empty: none).

    The key is computed as the runner computes it, from the repository and the environment, with
    the upstream artefacts' hashes read from the upstream runs' records (no data, no artefact files)."""
    chapters = discover(root)
    runner = _KeysOnly(chapters, log=lambda line: None)
    names = sorted(chapters)
    stale: dict[str, list[str]] = {}
    folders: dict[str, Path] = {}
    for wave in runner.plan(names, profile, {}):
        for name in wave:
            folder = latest_run(name, profile)
            if folder is None:
                stale[name] = [f"no {profile}-profile run"]
                continue
            try:
                record = RunRecord.load(folder / RUN_FILE)
            except RecordError as exc:
                stale[name] = [str(exc)]
                continue
            pending = [t.split("/", 1)[0] for t in chapters[name].needs.values() if t.split("/", 1)[0] in stale]
            if pending:
                stale[name] = [f"upstream {', '.join(sorted(set(pending)))} is not current"]
                continue
            spec = chapters[name]
            params = spec.resolve(profile, {})
            upstream, paths = runner._upstream(spec, folders)
            params.update(paths)
            components = key_components(spec, params, upstream)
            if key_of(components) != record.cache_key:
                stale[name] = explain_change(record.key_components, components)
            elif not (folder / f"{name}.ipynb").is_file():
                stale[name] = [f"the executed notebook {name}.ipynb is missing"]
            else:
                folders[name] = folder
    return stale


# --- the command line (added to `embrepro` by embrepro.book.cli) ------------------------------

def _cmd_launch_cells(args) -> int:
    from embrepro.book.launch import update_setup_cells

    changed = update_setup_cells(check=args.check)
    if args.check:
        print(f"{len(changed)} chapter(s) lack the current launch set-up cell" + (f": {', '.join(changed)}" if changed else ""))
        return 1 if changed else 0
    print(f"updated the launch set-up cell of {len(changed)} chapter(s)" + (f": {', '.join(changed)}" if changed else ""))
    return 0


def _cmd_data_fetch(args) -> int:
    from embrepro.book.launch import fetch_data

    chapters = discover()
    unknown = [c for c in args.chapters if c not in chapters]
    if unknown:
        raise UsageError(f"unknown chapter(s) {', '.join(unknown)}; chapters: {', '.join(sorted(chapters))}")
    for name in args.chapters or sorted(chapters):
        done = fetch_data(name)
        print(f"{name}: {len(done)} file(s) downloaded and verified" if done else f"{name}: every data file is here")
    return 0


def _cmd_seeds_table(args) -> int:
    from embrepro.book.coverage import SEEDS_TABLE, seeds_dir, seeds_table_text

    folder = Path(args.seeds) if args.seeds else seeds_dir()
    if not (folder / "papers.tsv").exists():
        raise UsageError(f"{folder} has no papers.tsv (set EMBREPRO_SEEDS or pass --seeds)")
    text, target = seeds_table_text(folder), project_root() / SEEDS_TABLE
    if args.check:
        same = target.exists() and target.read_text() == text
        print(f"{SEEDS_TABLE} is {'up to date' if same else 'out of date: run `embrepro seeds-table`'}")
        return 0 if same else 1
    target.write_text(text)
    print(f"wrote {target} ({text.count(chr(10)) - 1} papers)")
    return 0


def _cmd_bundle(args) -> int:
    if args.action == "write":
        output = Path(args.output or project_root() / ".cache" / "published" / f"{args.profile}-runs.tar.gz")
        pointer = write_bundle(output, args.profile, args.tag)
        print(f"wrote {output} ({pointer['chapters']} chapters, sha256 {pointer['sha256']}) and {POINTER}\n"
              f"attach it to the release: gh release create {pointer['tag']} {output}")
        return 0
    if args.action == "restore":
        pointer = read_pointer()
        archive = Path(args.archive or project_root() / ".cache" / "published" / pointer["asset"])
        restore_bundle(archive)
        return 0
    stale = stale_runs(args.profile)
    for name, reasons in sorted(stale.items()):
        print(f"STALE {name}: {'; '.join(reasons)}")
    print(f"{len(discover()) - len(stale)} chapter(s) current, {len(stale)} would need to run")
    return 1 if stale else 0


def add_commands(sub) -> None:
    """The publishing commands, as sub-commands of ``embrepro``."""
    from embrepro.book.runner import PROFILES

    cells = sub.add_parser("launch-cells", help="insert or update every chapter's launch set-up cell (Colab, Binder)")
    cells.add_argument("--check", action="store_true", help="only say which chapters lack the current cell (exit 1)")
    cells.set_defaults(func=_cmd_launch_cells)

    data = sub.add_parser("data", help="data sets: `embrepro data fetch [CHAPTER ...]` downloads and verifies")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="download the chapters' missing data files and check their sha256")
    fetch.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    fetch.set_defaults(func=_cmd_data_fetch)

    seeds = sub.add_parser("seeds-table", help=f"write book/seeds.tsv (the coverage page's slim seed table)")
    seeds.add_argument("--seeds", default=None, help="the seed folder (default: EMBREPRO_SEEDS or ../shared/seeds)")
    seeds.add_argument("--check", action="store_true", help="only say whether book/seeds.tsv is up to date (exit 1)")
    seeds.set_defaults(func=_cmd_seeds_table)

    bundle = sub.add_parser("bundle", help="the recorded runs' executed notebooks as a release asset (publishing)")
    bundle.add_argument("action", choices=("write", "restore", "check"),
                        help="write: bundle the recorded runs and the pointer; restore: verify and unpack one; "
                             "check: fail when any chapter would need to run")
    bundle.add_argument("archive", nargs="?", default=None, help="restore: the downloaded archive")
    bundle.add_argument("--profile", default="book", choices=PROFILES)
    bundle.add_argument("--tag", default=None, help="write: the release tag the archive will be attached to")
    bundle.add_argument("--output", default=None, help="write: the archive (default .cache/published/)")
    bundle.set_defaults(func=_cmd_bundle)
