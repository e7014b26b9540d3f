"""word2vec training arms on a word budget, for the word2vec chapter.

The chapter compares training objectives (negative sampling, hierarchical softmax, CBOW) and
subsampling on one corpus. Everything here serves three rules of ``../shared/docs/verdicts.md``:

* **Same questions for every arm.** Every model is built from the *same* word counts
  (:func:`word_counts` of the whole training corpus, ``build_vocab_from_freq``), so all arms share
  one vocabulary in one order, whatever slice of the corpus they are trained on; their analogy
  answers (:func:`embrepro.evaluation.analogy_answers`) then line up question by question, and a
  paired bootstrap over questions applies (:func:`accuracy_difference`).
* **Equal measured budgets.** "At the same training time" becomes a word budget: the faster arm
  reads the whole corpus once, the slower one a cut of it that is shorter by the measured speed
  ratio (:func:`equal_time_words`). The ratio is rounded to a declared step first, so that timing
  jitter smaller than the step cannot change which models are trained.
* **Deterministic on the CPU.** One gensim worker thread per model; several models may train at
  once in separate processes (:func:`run_jobs`), which changes nothing in any model.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embrepro import stats

__all__ = ["Job", "accuracy_difference", "equal_time_words", "filter_analogy_file", "floor_from_reference",
           "make_model", "quantise_ratio", "relative_cost", "run_jobs", "train_and_score", "train_pass", "word_counts"]


def word_counts(sentences) -> tuple[Counter, int, int]:
    """Counts of every word in an iterable of token lists, with the token and sentence totals."""
    counts: Counter = Counter()
    tokens = lines = 0
    for words in sentences:
        counts.update(words)
        tokens += len(words)
        lines += 1
    return counts, tokens, lines


def make_model(settings: Mapping, counts: Mapping[str, int], corpus_count: int, *, vector_size: int,
               window: int, min_count: int, seed: int):
    """A gensim ``Word2Vec`` with one worker thread and its vocabulary built from ``counts``."""
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=vector_size, window=window, min_count=min_count, seed=seed, workers=1,
                     **dict(settings))
    model.build_vocab_from_freq(dict(counts), corpus_count=corpus_count)
    return model


def train_pass(model, path: Path | str, tokens: int, sentences: int, epochs: int = 1) -> tuple[float, int, int]:
    """Train ``epochs`` passes over a corpus file; returns (seconds, effective words, raw words)."""
    start = time.perf_counter()
    effective, raw = model.train(corpus_file=str(path), total_words=int(tokens), total_examples=int(sentences),
                                 epochs=int(epochs))
    return time.perf_counter() - start, int(effective), int(raw)


@dataclass(frozen=True)
class Job:
    """One model to train and score: an arm (gensim settings) on a corpus file, with one seed."""

    arm: str
    settings: dict
    seed: int
    path: str
    tokens: int
    sentences: int
    epochs: int
    vector_size: int
    window: int
    min_count: int
    restrict_vocab: int
    similarity_sets: tuple[str, ...] = ()
    keep_vectors: bool = False


def train_and_score(job: Job, counts: Mapping[str, int], corpus_count: int) -> dict:
    """Train one model and score it: per-question analogy answers, word similarity, timings."""
    from embrepro import evaluation

    model = make_model(job.settings, counts, corpus_count, vector_size=job.vector_size, window=job.window,
                       min_count=job.min_count, seed=job.seed)
    seconds, effective, raw = train_pass(model, job.path, job.tokens, job.sentences, job.epochs)
    answers = evaluation.analogy_answers(model.wv, "google", restrict_vocab=job.restrict_vocab)
    out = {"arm": job.arm, "seed": job.seed, "train_s": seconds, "effective": effective, "raw": raw,
           "questions": answers["question"].tolist(), "kind": answers["kind"].tolist(),
           "section": answers["section"].tolist(), "correct": answers["correct"].to_numpy(dtype=bool),
           "vocabulary": len(model.wv), "similarity": {}}
    for name in job.similarity_sets:
        sim = evaluation.word_similarity(model.wv, name)
        out["similarity"][name] = (sim["spearman"], sim["coverage"])
    if job.keep_vectors:
        out["vectors"] = model.wv
    return out


_SHARED: dict = {}


def _init_worker(counts, corpus_count):
    _SHARED["counts"], _SHARED["corpus_count"] = counts, corpus_count
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _run_shared(job: Job) -> dict:
    return train_and_score(job, _SHARED["counts"], _SHARED["corpus_count"])


def relative_cost(job: Job) -> float:
    """A rough guess of a job's training time, used only to start the longest jobs first.

    Words read, times the work per word: k + 1 output vectors for NEG-k skip-gram, about half of
    NEG-5's for hierarchical softmax on a vocabulary of tens of thousands of words, a third for
    CBOW, and a third with 1e-5-style subsampling. It orders the jobs; it never changes a model.
    """
    s = job.settings
    work = 3.0 if s.get("hs") else float(s.get("negative", 5) + 1)
    if not s.get("sg", 0):
        work /= 3
    if s.get("sample", 0):
        work /= 3
    return job.tokens * job.epochs * work


def run_jobs(jobs: Sequence[Job], counts: Mapping[str, int], corpus_count: int, processes: int = 1,
             progress=None) -> list[dict]:
    """Train and score every job; results in the order of ``jobs`` whatever order they finish in.

    ``processes`` > 1 trains that many models at once, each in its own process with one gensim
    thread: the models are the same as when trained one after another, only the wall time changes.
    ``progress`` (a tqdm bar or None) is advanced once per finished job.
    """
    jobs = list(jobs)
    if processes <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(train_and_score(job, counts, corpus_count))
            if progress is not None:
                progress.update(1)
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list[dict | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(dict(counts), corpus_count)) as pool:
        # the longest jobs first, so that the processes finish close together
        order = sorted(range(len(jobs)), key=lambda i: -relative_cost(jobs[i]))
        futures = {pool.submit(_run_shared, jobs[i]): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress is not None:
                progress.update(1)
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Equal budgets, floors and intervals
# --------------------------------------------------------------------------------------------

def quantise_ratio(ratio: float, step: float) -> float:
    """A speed ratio rounded to the nearest multiple of ``step`` (never below ``step``)."""
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"a speed ratio must be positive and finite, got {ratio}")
    if not step > 0:
        raise ValueError(f"the rounding step must be positive, got {step}")
    return max(step, round(ratio / step) * step)


def equal_time_words(corpus_tokens: int, time_ratio: float) -> dict[str, int]:
    """Word budgets of two arms that take the same time, from ``time_ratio`` = time of A / time of B.

    Both arms read the same number of words per second of their own speed: the faster arm reads
    the whole corpus once and the slower arm ``corpus_tokens / ratio`` words (ratio >= 1 after
    orienting). Returns ``{"A": words, "B": words}``.
    """
    if corpus_tokens < 1:
        raise ValueError(f"the corpus must hold at least one token, got {corpus_tokens}")
    if not (time_ratio > 0 and math.isfinite(time_ratio)):
        raise ValueError(f"a time ratio must be positive and finite, got {time_ratio}")
    if time_ratio >= 1:  # A is slower: it gets fewer words
        return {"A": int(round(corpus_tokens / time_ratio)), "B": int(corpus_tokens)}
    return {"A": int(corpus_tokens), "B": int(round(corpus_tokens * time_ratio))}


def floor_from_reference(reference_accuracy: float, fraction: float) -> float:
    """The sanity floor: a declared ``fraction`` of a reference model's accuracy on the same questions."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the floor fraction must lie in (0, 1], got {fraction}")
    if not 0 <= reference_accuracy <= 100:
        raise ValueError(f"an accuracy in % must lie in [0, 100], got {reference_accuracy}")
    return fraction * reference_accuracy


def accuracy_difference(a, b, n_boot: int = 1000, seed: int = 0) -> stats.Interval:
    """Accuracy of A minus B in points, on the same questions, with the interval the verdicts use.

    ``a`` and ``b`` hold per-question correctness, shape (questions,) for one seed or (seeds,
    questions) for several, the seeds paired. Over questions: a paired bootstrap of the per-question
    correctness (averaged over seeds first). With two or more seeds, also the paired t-interval of
    the per-seed accuracies, and the wider of the two is returned (``verdicts.md``, "Intervals").
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired arms need the same seeds and questions, got shapes {a.shape} and {b.shape}")
    if a.shape[1] == 0:
        raise ValueError("no questions to compare")
    items = stats.paired_bootstrap(100 * a.mean(axis=0), 100 * b.mean(axis=0), n_boot=n_boot, seed=seed)
    return stats.seeds_and_items(100 * a.mean(axis=1) - 100 * b.mean(axis=1), items, one_seed="items")


def filter_analogy_file(questions: Sequence[str], source: Path | str, folder: Path | str | None = None) -> Path:
    """A copy of an analogy file holding only ``questions`` (upper-cased, space-separated, as
    :func:`embrepro.evaluation.analogy_answers` writes them), with their section headers."""
    wanted = {q.upper() for q in questions}
    folder = Path(folder or tempfile.mkdtemp(prefix="analogy-"))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "questions-subset.txt"
    with open(source, encoding="utf-8") as fh, open(target, "w", encoding="utf-8") as out:
        for line in fh:
            if line.startswith(":"):
                out.write(line)
            elif " ".join(line.upper().split()) in wanted:
                out.write(line)
    return target
