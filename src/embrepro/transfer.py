"""SentEval-style transfer evaluation: logistic regression on frozen sentence embeddings.

The protocol follows SentEval (Conneau & Kiela 2018) with its scikit-learn classifier:

* ``cv`` tasks (MR, CR, SUBJ, MPQA): ``folds``-fold stratified cross-validation on the whole pool;
  inside each outer training fold, the inverse regularisation ``C`` is chosen from
  ``2**-2 .. 2**3`` by an inner ``folds``-fold cross-validation; the test accuracy is the mean over
  the outer folds.
* ``kfold`` tasks (TREC, MRPC): ``C`` from ``2**-1 .. 2**5`` by ``folds``-fold cross-validation on
  the training split, then one fit on all of it and one test.
* ``split`` tasks (SST-2, SICK-E): ``C`` from ``2**-2 .. 2**3`` chosen on the dev split.

Pair tasks (MRPC, SICK-E) use SentEval's pair features ``[|u - v|, u * v]``. SentEval's default
is ten folds; fewer folds are a cheaper, declared departure. Besides accuracies, every result keeps
which test items were classified correctly, so two encoders can be compared item by item (a paired
bootstrap) instead of by two means.

Cost: a ``cv`` task fits ``folds x (6 x folds + 1)`` classifiers (610 at ten folds; on averaged
GloVe 50d a fit of MR takes about a second on two loaded cores), a ``kfold`` task ``7 x folds + 1``;
chapters cache the results of a frozen encoder rather than recompute them.

STS-B and SICK-R are not classification tasks: :func:`relatedness` scores them the unsupervised
way (Spearman correlation of cosines with the gold scores, :func:`embrepro.evaluation.evaluate_sts`),
keeping the per-pair cosines for a paired bootstrap; SentEval's supervised regression on them is not
implemented. :func:`macro_difference` compares two encoders over several tasks, item by item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from embrepro.data.senteval import TRANSFER_TASKS, TransferTask, load_transfer

#: SentEval's grids of C for scikit-learn's LogisticRegression.
C_GRID_CV = tuple(2.0 ** t for t in range(-2, 4))
C_GRID_KFOLD = tuple(2.0 ** t for t in range(-1, 6))

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass
class TransferResult:
    """One task's outcome: accuracies in percent and the per-item correctness behind them."""

    task: str
    dev_accuracy: float            # the selection score of the chosen C (inner CV, CV or dev split)
    test_accuracy: float
    correct: np.ndarray            # bool per test item (for cv tasks: every item, from its outer fold)
    chosen_c: list[float]          # one per outer fold (cv) or a single value
    n_train: int
    n_test: int
    folds: int
    extra: dict = field(default_factory=dict)


def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SentEval's features of a sentence pair: ``[|u - v|, u * v]``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pair embeddings differ in shape: {a.shape} vs {b.shape}")
    return np.concatenate([np.abs(a - b), a * b], axis=1)


def _classifier(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=c, random_state=seed, max_iter=1000)


def _cv_accuracy(X: np.ndarray, y: np.ndarray, c: float, folds: int, seed: int) -> float:
    from sklearn.model_selection import StratifiedKFold
    scores = []
    for tr, te in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
        scores.append(_classifier(c, seed).fit(X[tr], y[tr]).score(X[te], y[te]))
    return float(np.mean(scores))


def _best_c(X: np.ndarray, y: np.ndarray, grid: Sequence[float], folds: int, seed: int) -> tuple[float, float]:
    # SentEval keeps the first C with the highest (rounded) score: ties go to the stronger regulariser.
    scores = [round(100 * _cv_accuracy(X, y, c, folds, seed), 2) for c in grid]
    best = int(np.argmax(scores))
    return grid[best], scores[best]


def _features(task: TransferTask, split: str, lookup: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = task.splits[split]
    if task.pairs:
        X = pair_features(np.stack([lookup[a] for a, _ in texts]), np.stack([lookup[b] for _, b in texts]))
    else:
        X = np.stack([lookup[t] for t in texts]).astype(np.float64)
    return X, np.asarray(labels)


def evaluate_task(encode: Encode, task: TransferTask | str, folds: int = 10, seed: int = 1111,
                  limit: int | None = None, inner_folds: int | None = None) -> TransferResult:
    """Evaluate an encoder on one task under SentEval's protocol (see the module docstring).

    ``encode`` maps a list of sentences to an (n, d) array; it is called once per task on the
    task's distinct sentences. ``limit`` keeps a stratified random subset of each split (smoke
    runs only: the numbers are then not comparable with published ones). ``inner_folds`` (cv
    tasks only) sets the folds of the inner cross-validation that chooses ``C``; ``None`` keeps
    SentEval's ``folds`` (a cv task then costs ``folds x (6 x inner_folds + 1)`` fits).
    """
    if isinstance(task, str):
        task = load_transfer(task)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    inner = folds if inner_folds is None else inner_folds
    if inner < 2:
        raise ValueError(f"inner_folds must be at least 2, got {inner_folds}")
    if limit is not None:
        task = subsample(task, limit, seed)
    sentences = task.sentences()
    emb = np.asarray(encode(sentences))
    if emb.ndim != 2 or emb.shape[0] != len(sentences):
        raise ValueError(f"encode returned shape {emb.shape} for {len(sentences)} sentences")
    if not np.isfinite(emb).all():
        raise ValueError(f"encode returned non-finite values for task {task.name}")
    lookup = dict(zip(sentences, emb))

    if task.protocol == "cv":
        from sklearn.model_selection import StratifiedKFold
        X, y = _features(task, "train", lookup)
        correct = np.zeros(len(y), dtype=bool)
        dev, test, chosen = [], [], []
        for tr, te in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
            c, score = _best_c(X[tr], y[tr], C_GRID_CV, inner, seed)
            clf = _classifier(c, seed).fit(X[tr], y[tr])
            correct[te] = clf.predict(X[te]) == y[te]
            dev.append(score)
            test.append(100 * float(correct[te].mean()))
            chosen.append(c)
        return TransferResult(task.name, float(np.mean(dev)), float(np.mean(test)), correct, chosen,
                              len(y), len(y), folds)

    X, y = _features(task, "train", lookup)
    Xt, yt = _features(task, "test", lookup)
    if task.protocol == "kfold":
        c, dev = _best_c(X, y, C_GRID_KFOLD, folds, seed)
    elif task.protocol == "split":
        Xd, yd = _features(task, "dev", lookup)
        scores = [round(100 * _classifier(c, seed).fit(X, y).score(Xd, yd), 2) for c in C_GRID_CV]
        best = int(np.argmax(scores))
        c, dev = C_GRID_CV[best], scores[best]
    else:
        raise ValueError(f"unknown protocol {task.protocol!r}")
    predicted = _classifier(c, seed).fit(X, y).predict(Xt)
    correct = predicted == yt
    extra = {}
    if task.name == "MRPC":
        from sklearn.metrics import f1_score
        extra["f1"] = 100 * float(f1_score(yt, predicted))
    return TransferResult(task.name, float(dev), 100 * float(correct.mean()), correct, [c],
                          len(y), len(yt), folds, extra)


def subsample(task: TransferTask, limit: int, seed: int = 0) -> TransferTask:
    """A copy of ``task`` with at most ``limit`` items per split, stratified by label, order kept."""
    if limit < 10:
        raise ValueError(f"limit must be at least 10 items, got {limit}")
    rng = np.random.default_rng(seed)
    splits = {}
    for split, (texts, labels) in task.splits.items():
        labels_arr = np.asarray(labels)
        if len(labels) <= limit:
            splits[split] = (list(texts), list(labels))
            continue
        keep = []
        for label in np.unique(labels_arr):
            idx = np.flatnonzero(labels_arr == label)
            share = max(1, int(round(limit * len(idx) / len(labels))))
            keep.extend(rng.choice(idx, size=min(share, len(idx)), replace=False).tolist())
        keep = sorted(keep)
        splits[split] = ([texts[i] for i in keep], [labels[i] for i in keep])
    return TransferTask(task.name, task.protocol, task.n_classes, task.pairs, splits)


def evaluate(encode: Encode, tasks: Sequence[str] = tuple(TRANSFER_TASKS), folds: int = 10, seed: int = 1111,
             limit: int | None = None, progress: bool = True, inner_folds: int | None = None
             ) -> dict[str, TransferResult]:
    """:func:`evaluate_task` over several tasks (a progress bar per task); results by task name."""
    unknown = [t for t in tasks if t not in TRANSFER_TASKS]
    if unknown:
        raise ValueError(f"unknown transfer tasks {unknown}; choose from {', '.join(TRANSFER_TASKS)}")
    from tqdm.auto import tqdm
    out = {}
    for name in tqdm(list(tasks), desc="transfer tasks", disable=not progress):
        out[name] = evaluate_task(encode, name, folds=folds, seed=seed, limit=limit, inner_folds=inner_folds)
    return out


def results_table(results: dict[str, TransferResult]):
    """One row per task: dev and test accuracy, chosen C, sizes (a pandas DataFrame)."""
    import pandas as pd
    rows = [{"task": r.task, "dev": r.dev_accuracy, "test": r.test_accuracy,
             "C": r.chosen_c[0] if len(set(r.chosen_c)) == 1 else "varies", "train": r.n_train, "test items": r.n_test,
             **r.extra} for r in results.values()]
    return pd.DataFrame(rows).set_index("task")


#: Relatedness tasks scored by cosine: name -> (loader, splits it offers).
RELATEDNESS_TASKS = {"STSB": ("load_stsb", ("train", "dev", "test")), "SICKR": ("load_sick", ("train", "trial", "test"))}


def relatedness(encode: Encode, name: str, split: str = "test"):
    """Spearman x 100 of cosine similarity against the gold scores on STS-B or SICK-R (no training).

    Returns :class:`embrepro.evaluation.STSResult`, whose ``cosines`` (one per pair, in the file's
    order) feed :func:`embrepro.stats.bootstrap_spearman` for paired comparisons.
    """
    from embrepro import data, evaluation

    if name not in RELATEDNESS_TASKS:
        raise ValueError(f"unknown relatedness task {name!r}; choose from {', '.join(RELATEDNESS_TASKS)}")
    loader, splits = RELATEDNESS_TASKS[name]
    if split not in splits:
        raise ValueError(f"{name} has splits {', '.join(splits)}, not {split!r}")
    return evaluation.evaluate_sts(encode, getattr(data, loader)(split))


def _item_accuracy(runs: Sequence[dict[str, TransferResult]], task: str) -> np.ndarray:
    """Per-item share of the runs (seeds) that classified the item correctly."""
    return np.mean([np.asarray(r[task].correct, dtype=np.float64) for r in runs], axis=0)


def macro_difference(a_by_seed: Sequence[dict[str, TransferResult]], b_by_seed: Sequence[dict[str, TransferResult]],
                     n_boot: int = 1000, seed: int = 0):
    """Macro-averaged test accuracy (percent) of encoder A minus encoder B over the same tasks and items.

    Each argument holds one :func:`evaluate` result per training seed (``b_by_seed`` may hold a single
    one: a deterministic baseline shared by every seed). A task's accuracy is the share of its
    test items classified correctly (for cv tasks every item, from its outer fold). The interval is
    the wider of a paired t-interval over the per-seed differences (infinite with one seed) and a
    bootstrap that resamples each task's items independently, A and B on the same resample, seeds
    averaged item by item (:func:`embrepro.stats.seeds_and_items`).
    """
    from embrepro import stats

    a, b = stats.pair_seeds(a_by_seed, b_by_seed)
    tasks = list(a[0])
    for r in a + b:
        if list(r) != tasks:
            raise ValueError(f"every result must cover the same tasks in the same order: {list(r)} vs {tasks}")
        for t in tasks:
            if len(r[t].correct) != len(a[0][t].correct):
                raise ValueError(f"task {t}: the results were scored on different items")

    def macro(runs):
        return 100 * float(np.mean([_item_accuracy(runs, t).mean() for t in tasks]))

    per_seed = [macro([x]) - macro([y]) for x, y in zip(a, b)]
    rng = np.random.default_rng(seed)
    diffs = np.zeros(n_boot)
    for t in tasks:
        d = _item_accuracy(a, t) - _item_accuracy(b, t)
        diffs += d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    diffs *= 100 / len(tasks)
    n_items = sum(len(a[0][t].correct) for t in tasks)
    over_items = stats.replicate_interval(float(np.mean(per_seed)), diffs,
                                          method=f"bootstrap over {n_items} items of {len(tasks)} tasks")
    return stats.seeds_and_items(per_seed, over_items)


def macro_accuracy(results: dict[str, TransferResult]) -> float:
    """The mean over tasks of each task's share of correctly classified test items (percent)."""
    return 100 * float(np.mean([np.asarray(r.correct, dtype=np.float64).mean() for r in results.values()]))
