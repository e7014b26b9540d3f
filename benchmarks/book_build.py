"""Time a cold and then a warm build of the whole book (``make book-timing``); run it on a quiet machine.

Cold: a fresh cache folder (``EMBREPRO_CACHE``: embeddings, derived files, checksums) and a fresh
runs folder (``EMBREPRO_RUNS``) under ``--workdir``, so every chapter runs at the book profile
and every text is encoded; then the HTML is built. Warm: the same two commands again, so every
chapter is a cache hit. The data mirror and the installed models are not part of the build.

Writes ``results/build/book-timing.json`` (per phase, and each chapter's cold run time from its run
record), which the run report shows (:mod:`embrepro.book.buildtime`). The runs stay in
``--workdir``, so ``EMBREPRO_RUNS=<workdir>/runs embrepro record CHAPTER`` records them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def timed(cmd: list[str], env: dict, label: str) -> float:
    print(f"[book-timing] {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"[book-timing] {label} failed (exit {done.returncode}) after {seconds:.0f} s; "
                         "nothing was written to results/build/")
    print(f"[book-timing] {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="_build/book-timing", help="fresh cache and runs folders go here")
    parser.add_argument("--jobs", type=int, default=1, help="chapters at a time (as make book's JOBS)")
    parser.add_argument("--fresh", action="store_true", help="delete --workdir first (else it must not exist)")
    parser.add_argument("--out", default="results/build/book-timing.json")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    from embrepro.book.buildtime import validate
    from embrepro.book.runner import discover, latest_run
    from embrepro.book.record import RunRecord
    from embrepro.paths import project_root, threads
    from embrepro.precision import cpu_model, default_precision

    root = project_root()
    work = (root / args.workdir).resolve()
    if work.exists():
        if not args.fresh:
            parser.error(f"{work} exists, so the build would not be cold: remove it or pass --fresh")
        shutil.rmtree(work)
    (work / "cache").mkdir(parents=True)
    (work / "runs").mkdir()
    env = {**os.environ, "EMBREPRO_CACHE": str(work / "cache"), "EMBREPRO_RUNS": str(work / "runs")}
    emb = str(Path(sys.executable).with_name("embrepro"))
    run = [emb, "run", "--profile", "book", "--jobs", str(args.jobs)]
    book = [emb, "book", "--profile", "book", "--path-output", str(work / "site")]

    phases = {}
    for build in ("cold", "warm"):
        run_s = timed(run, env, f"{build}: run every chapter")
        book_s = timed(book, env, f"{build}: build the HTML")
        phases[build] = {"run_s": round(run_s, 1), "book_s": round(book_s, 1), "total_s": round(run_s + book_s, 1)}

    os.environ["EMBREPRO_RUNS"] = env["EMBREPRO_RUNS"]
    chapters = {}
    for name in discover(root):
        folder = latest_run(name, "book")
        if folder is None:
            raise SystemExit(f"[book-timing] no book run of {name} in {work / 'runs'}")
        chapters[name] = RunRecord.load(folder / "result.json").runtime_s
    phases["cold"]["chapters"] = chapters
    result = validate({
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads(),
                    "precision": default_precision()},
        "jobs": args.jobs,
        **phases,
    })
    out = root / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    cold, warm = result["cold"], result["warm"]
    print(f"cold: {cold['total_s']:.0f} s ({cold['total_s'] / len(chapters) / 60:.2f} min per chapter over "
          f"{len(chapters)} chapters); warm: {warm['total_s']:.1f} s. Written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
