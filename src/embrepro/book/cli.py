"""The ``embrepro`` command line.

    embrepro list
    embrepro run [CHAPTER ...] [--profile P] [-p NAME=VALUE ...] [--jobs N] [--force] [--dry-run]
    embrepro determinism [CHAPTER ...] [--profile P]
    embrepro sweep CHAPTER [--profile P] --grid NAME=V1,V2 [--grid ...] [--seeds N]
                   [--scheduler ADDRESS | --workers N] [--threads T] [--force] [--metric NAME]
                   [--name NAME | --out DIR]
    embrepro book [--profile P] [--no-build]
    embrepro scorecard [--profile P]
    embrepro record CHAPTER [--profile P]
    embrepro check-pages [HTML_DIR]
    embrepro launch-cells [--check]             (embrepro.book.launch)
    embrepro data fetch [CHAPTER ...]
    embrepro seeds-table [--check]
    embrepro bundle write|restore|check ...    (embrepro.book.publish)

``sweep`` runs one chapter over the product of the ``--grid`` values and ``--seeds N`` seeds (the
chapter's ``seed`` parameter, spaced by its ``n_seeds``/``n_control_seeds`` so that no two runs
share a seed), each point one ``embrepro run`` on Dask distributed (a LocalCluster of ``--workers``
processes, default 2, or the scheduler at ``--scheduler``), and writes ``sweep.csv``, ``sweep.png``
and an includable ``sweep.md`` under ``_build/sweeps/CHAPTER/NAME/`` (see
:mod:`embrepro.book.sweep`). Progress (run, sweep, book) goes to stderr.

Exit status: 0 on success, 1 when a chapter, a sweep's run or the build failed (or, for
``determinism``, when two runs differ), 2 for bad input (an unknown or broken chapter, an unknown
parameter or profile, a value of the wrong type or out of range, a read-only runs or results
folder), reported before anything runs.
"""

from __future__ import annotations

import argparse
import os
import json
import sys

from embrepro.book.runner import PROFILES, ParameterError, UsageError


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"-p takes NAME=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        out[name.strip()] = value
    return out


def _cmd_list(args) -> int:
    from embrepro.book.runner import discover, latest_run

    chapters = discover()
    for name in sorted(set(chapters) | set(chapters.broken)):
        if name in chapters.broken:
            print(f"{name:24s} BROKEN: {chapters.broken[name]}")
            continue
        spec = chapters[name]
        runs = [p for p in PROFILES if latest_run(name, p) is not None]
        print(f"{name:24s} {spec.title}  [runs: {', '.join(runs) or 'none'}]")
        print(f"{'':24s} parameters: {', '.join(f'{k}={v!r}' for k, v in spec.defaults.items())}")
    return 0


def _progress_line(outcome, done: int, total: int, elapsed: float) -> None:
    """One line per finished chapter on stderr: ``[3/12] ran word2vec:book 41.2 s (elapsed 95 s)``."""
    print(f"[{done}/{total}] {outcome.status} {outcome.chapter}:{outcome.profile} {outcome.seconds:.1f} s "
          f"(elapsed {elapsed:.0f} s)", file=sys.stderr, flush=True)


def _cmd_run(args) -> int:
    from embrepro.book.runner import Runner, main_exit_code

    runner = Runner()
    if args.dry_run:
        for d in runner.explain(args.chapters or None, profile=args.profile,
                                overrides=_overrides(args.param), force=args.force):
            print(f"{d.action:4s} {d.chapter:24s} {d.profile:6s} {'; '.join(d.reasons)}")
        return 0
    outcomes = runner.run(args.chapters or None, profile=args.profile, overrides=_overrides(args.param),
                          jobs=args.jobs, force=args.force, progress=_progress_line)
    print()
    for o in outcomes:
        print(f"{o.status:7s} {o.chapter:24s} {o.profile:6s} {o.seconds:8.1f} s  {o.folder}")
        if o.message:
            print(f"        {o.message}")
    return main_exit_code(outcomes)


def _cmd_sweep(args) -> int:
    from embrepro.book.sweep import command_line, parse_grid, sweep

    done = sweep(args.chapter, args.profile, parse_grid(args.grid), args.seeds, scheduler=args.scheduler,
                 workers=args.workers, force=args.force, threads_per_run=args.threads, name=args.name,
                 out=args.out, metric=args.metric, command=command_line(args.argv))
    statuses = [r["status"] for r in done.results]
    print(f"{len(statuses)} runs of {args.chapter} at the {args.profile} profile: {statuses.count('ran')} ran, "
          f"{statuses.count('hit')} cache hits, {statuses.count('failed')} failed")
    for task, result in done.failed:
        print(f"  failed: {task.label()}: {result['message'].strip().splitlines()[-1] if result['message'] else ''}")
    print(f"table  {done.table}\nfigure {done.figure}\npage   {done.page}  (metric: {done.metric or 'none'})")
    return 1 if done.failed else 0


def _cmd_book(args) -> int:
    import time

    from embrepro.book.pages import assemble, build

    steps, start = 1 if args.no_build else 2, time.time()
    print(f"[1/{steps}] assembling the chapters and the generated pages ...", file=sys.stderr, flush=True)
    chapters = assemble(args.profile)
    print(f"assembled {len(chapters)} chapters at the {args.profile} profile")
    if not args.no_build:
        print(f"[2/2] building the HTML with Jupyter Book (elapsed {time.time() - start:.0f} s) ...",
              file=sys.stderr, flush=True)
        html = build(path_output=args.path_output)
        print(f"built {html / 'index.html'}")
    print(f"book done in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


def _cmd_scorecard(args) -> int:
    from embrepro.book.runner import discover
    from embrepro.book.scorecard import collect, scorecard_text, to_json

    card = collect(discover(), args.profile)
    print(to_json(card) if args.json else scorecard_text(card))
    return 0


def _cmd_determinism(args) -> int:
    from embrepro.book.runner import Runner

    report = Runner().determinism(args.chapters or None, profile=args.profile)
    print()
    for chapter, differences in report.items():
        print(f"{'same' if not differences else 'DIFFERS':8s} {chapter}")
        for line in differences:
            print(f"         {line}")
    return 1 if any(report.values()) else 0


def _cmd_record(args) -> int:
    from embrepro.book.record import RUN_FILE, RunRecord
    from embrepro.book.runner import NotWritable, latest_run, writable
    from embrepro.paths import project_root

    folder = latest_run(args.chapter, args.profile)
    if folder is None:
        raise UsageError(f"no {args.profile}-profile run of {args.chapter} to record")
    record = RunRecord.load(folder / RUN_FILE)
    target = project_root() / "results" / args.chapter / f"{args.profile}.json"
    if not writable(target.parent):
        raise NotWritable(f"cannot record into {target.parent} (read-only)")
    target.parent.mkdir(parents=True, exist_ok=True)
    record.save(target)
    print(f"recorded {folder.name} as {target}")
    return 0


def _cmd_check_pages(args) -> int:
    from embrepro.book.pagecheck import check_site

    return 0 if check_site(args.html_dir) else 1


def version_text() -> str:
    """The package's version and the data manifest's: its data sets, files and one hash over them."""
    import hashlib
    from importlib import metadata

    from embrepro.data.manifest import manifest

    try:
        package = metadata.version("embrepro")
    except metadata.PackageNotFoundError:
        package = "unknown (not installed)"
    datasets = manifest().datasets
    digest = hashlib.sha256("\n".join(f"{name} {ds.fingerprint()}" for name, ds in sorted(datasets.items())).encode())
    files = sum(len(ds.files) for ds in datasets.values())
    return (f"embrepro {package}\ndata manifest {digest.hexdigest()[:12]} "
            f"({len(datasets)} data sets, {files} files; data/manifest.yml)")


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embrepro", description="Embeddings, Reproduced: run and build the book.")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the package's version and the data manifest's version, then exit")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the chapters, their parameters and runs").set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="run chapters through papermill (cached by content)")
    run.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    run.add_argument("--profile", default="book", choices=PROFILES)
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a parameter of the notebook's parameters cell")
    run.add_argument("--jobs", "-j", type=int, default=1, help="chapters to run at once (each kernel gets EMBREPRO_THREADS threads, default 2)")
    run.add_argument("--force", action="store_true", help="run even when a cached result exists")
    run.add_argument("--dry-run", action="store_true",
                     help="only say, per chapter, whether it would be a cache hit or run, and why")
    run.set_defaults(func=_cmd_run)

    det = sub.add_parser("determinism", help="re-run chapters with --force and compare with the cached run")
    det.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    det.add_argument("--profile", default="smoke", choices=PROFILES)
    det.set_defaults(func=_cmd_determinism)

    sweep = sub.add_parser("sweep", help="run one chapter over a grid of parameters and seeds on Dask",
                           description="Each grid point x seed is one `embrepro run` of the chapter (same "
                           "validation, cache and run records), run on Dask distributed. Every point is "
                           "validated before anything runs. Output: sweep.csv, sweep.png, sweep.md, sweep.log "
                           "under _build/sweeps/CHAPTER/NAME/.")
    sweep.add_argument("chapter")
    sweep.add_argument("--profile", default="book", choices=PROFILES)
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                       help="a parameter and its values (repeat for a product grid; commas inside [...] "
                            "do not split a list value)")
    sweep.add_argument("--seeds", type=int, default=None, metavar="N",
                       help="N seeds per point: the chapter's `seed` parameter set to seed, seed+k, ..., "
                            "seed+(N-1)k, where k is the chapter's n_seeds (or n_control_seeds) at its "
                            "largest over the grid, else 1, so that no two runs share a seed")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://host:8786); its workers must see this project "
                            "and _runs/ at the same paths. Default: a LocalCluster")
    sweep.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)")
    sweep.add_argument("--threads", type=int, default=None, metavar="T",
                       help="threads per run (default EMBREPRO_THREADS, else 2; in the cache key, so another "
                            "value means other runs); workers x T above the cores makes the runs share them")
    sweep.add_argument("--force", action="store_true", help="run every point even when cached")
    sweep.add_argument("--metric", default=None,
                       help="the metric to plot (default: the first one that varies over the sweep)")
    sweep.add_argument("--name", default=None, help="the sweep's folder name (default: from the profile, grid and seeds)")
    sweep.add_argument("--out", default=None, help="write the table, figure and page here instead")
    sweep.set_defaults(func=_cmd_sweep)

    book = sub.add_parser("book", help="assemble the executed chapters and build the HTML book")
    book.add_argument("--profile", default="book", choices=PROFILES)
    book.add_argument("--no-build", action="store_true", help="only copy chapters and write generated pages")
    book.add_argument("--path-output", default=None, help="build under this folder instead of the project's _build")
    book.set_defaults(func=_cmd_book)

    card = sub.add_parser("scorecard", help="print every claim's verdict")
    card.add_argument("--profile", default="book", choices=PROFILES)
    card.add_argument("--json", action="store_true",
                      help="print every claim and check as JSON (chapter, id, kind, rule, values, interval, outcome)")
    card.set_defaults(func=_cmd_scorecard)

    record = sub.add_parser("record", help="keep a run's result.json under results/")
    record.add_argument("chapter")
    record.add_argument("--profile", default="paper", choices=PROFILES)
    record.set_defaults(func=_cmd_record)

    check = sub.add_parser("check-pages", help="open the built pages in headless Chromium and check them")
    check.add_argument("html_dir", nargs="?", default="_build/html")
    check.set_defaults(func=_cmd_check_pages)

    from embrepro.book.publish import add_commands  # launch-cells, data fetch, seeds-table, bundle

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # as typed (a sweep's page repeats it)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"embrepro: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("embrepro: interrupted; finished runs are kept, the interrupted one is not cached", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback for known failures
        from embrepro.book.pages import BookError
        from embrepro.book.record import RecordError
        from embrepro.data import DataError

        if isinstance(exc, RecordError):
            print(f"embrepro: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, (BookError, DataError)):
            print(f"embrepro: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
