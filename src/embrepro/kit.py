"""The chapter kit: the set-up and bookkeeping every chapter needs, one call each.

A chapter notebook uses it like this::

    from embrepro.kit import open_chapter, recorded_runs

    recorded_runs("word2vec")                      # Prerequisites: measured times per profile
    chapter = open_chapter("word2vec", profile, seed=seed, n_seeds=n_seeds, device=device)
    chapter.claim(...); chapter.check(...)          # Claims under test, Checks
    chapter.report("speedup", speedup)              # recorded in the run record AND glued for prose
    chapter.decide(...)                             # Verdict
    chapter.close()                                 # Cost: glues runtime and memory, saves, shows cost

:func:`open_chapter` seeds Python, NumPy and torch, resolves ``device="auto"``, pins torch to the
book's thread count (:func:`embrepro.paths.threads`) so that results do not depend on machine
load, and applies the book's figure style. This module is the one bridge from a notebook to the
book wing: :func:`recorded_runs` reads run records kept under ``results/``.
"""

from __future__ import annotations

import logging
import random

import numpy as np

from embrepro.claims import Chapter

PROFILE_ORDER = {"smoke": 0, "book": 1, "paper": 2}


def open_chapter(name: str, profile: str, *, seed: int = 0, n_seeds: int = 1, device: str = "auto",
                 torch: bool = True, quiet: tuple[str, ...] = ("gensim", "sentence_transformers",
                                                               "transformers")) -> Chapter:
    """Open a chapter: seeds, device, threads and figure style, and the record claims go into.

    ``chapter.seeds`` lists the seeds ``seed, seed + 1, ...`` (``n_seeds`` of them);
    ``chapter.device`` is the resolved device. ``torch=False`` skips importing torch (for chapters
    that never use it), in which case ``device`` must be ``"auto"`` or ``"cpu"`` and resolves to cpu.
    """
    from embrepro import plotting
    from embrepro.paths import threads

    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    random.seed(seed)
    np.random.seed(seed)
    if torch:
        import torch as _torch

        from embrepro.models import resolve_device, set_seed

        set_seed(seed)
        _torch.set_num_threads(threads())
        resolved = resolve_device(device)
    else:
        if device not in ("auto", "cpu"):
            raise ValueError(f"this chapter runs on the CPU only; device={device!r} cannot be used")
        resolved = "cpu"
    for logger in quiet:
        logging.getLogger(logger).setLevel(logging.WARNING)
    plotting.setup()
    chapter = Chapter(name, profile, device=resolved, seeds=[seed + i for i in range(n_seeds)])
    print(f"{name}: profile={profile}, seeds={chapter.seeds}, device={resolved}, threads={threads()}")
    return chapter


def recorded_runs(chapter: str):
    """Runs of a chapter kept under ``results/<chapter>/<profile>.json``, as a table."""
    import pandas as pd

    from embrepro.book.record import RunRecord
    from embrepro.paths import project_root

    rows = []
    for path in sorted((project_root() / "results" / chapter).glob("*.json")):
        r = RunRecord.load(path).to_json()
        rows.append({
            "profile": r["profile"],
            "runtime (s)": round(r["runtime_s"], 1),
            "peak memory (MB)": round(r["peak_memory_mb"]),
            "device": r.get("device", "cpu"),
            "cores": r.get("cpu_count"),
            "threads": r.get("threads"),
            "recorded": r.get("finished", ""),
        })
    if not rows:
        print(f"No recorded runs of {chapter} yet (embrepro record {chapter} --profile P adds one).")
        return pd.DataFrame(rows)
    return (pd.DataFrame(rows).sort_values("profile", key=lambda s: s.map(PROFILE_ORDER))
            .set_index("profile"))
