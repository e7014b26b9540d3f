"""Issue 12: the book's cold MiniLM encodings, old batching against new, side by side (not a test).

Old: ``SentenceTransformer.encode(texts, batch_size=64)``, whose batches are texts sorted by
*characters*; muvera's token vectors in a pass of their own (batch 32) before a sentence pass.
New: :func:`embrepro.models.encode_by_length` (texts sorted by word pieces, batches of at most
``BATCH_TOKENS`` padded pieces), the token and sentence vectors from one pass.

Workloads are seeded samples of the lists the cold book encodes (20 Newsgroups, Gutenberg sentences,
AG News, SciFact abstracts); variants run interleaved in a shuffled order per repeat, and the
speed-up is the median of per-repeat ratios of wall time and of the process's user+sys CPU time,
with a bootstrap interval over repeats (``embrepro.stats.median_ratio``, at least 5 repeats).
Also printed: the padded/real word-piece ratio of each full list under both batchings, and the
largest change of any vector coordinate. Usage: ``python benchmarks/cold_encoding.py [repeats] [scale]``.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    c0, t0 = cpu_s(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, cpu_s() - c0


def main(repeats: int = 5, scale: float = 1.0) -> None:
    from embrepro import data, retrieval, spaces, stats
    from embrepro.data import news
    from embrepro.models import BATCH_TEXTS, BATCH_TOKENS, encode_by_length, length_batches, word_piece_lengths
    from embrepro.precision import autocast

    enc = spaces.encoder("minilm")
    lists = {"20ng_train": news.load_20newsgroups("train").texts,
             "gut": data.gutenberg_sentences(100_200, seed=0).texts,
             "ag": news.load_ag_news().texts, "scifact_docs": retrieval.load_scifact().doc_texts()}
    for name, texts in lists.items():
        lens, chars = word_piece_lengths(enc, texts), np.array([len(t) for t in texts])
        order = np.argsort(-chars, kind="stable")
        old = sum(int(lens[order[s:s + 64]].max()) * len(order[s:s + 64]) for s in range(0, len(texts), 64))
        new = sum(int(lens[b].max()) * len(b) for b in length_batches(lens, BATCH_TOKENS, BATCH_TEXTS))
        print(f"{name}: {len(texts):,} texts, padded/real word pieces: old {old / lens.sum():.3f}, new {new / lens.sum():.3f}")
    rng = np.random.default_rng(7)
    sizes = {"20ng_train": 384, "gut": 4096, "ag": 768, "scifact_docs": 192}
    work = {k: [lists[k][i] for i in np.sort(rng.choice(len(lists[k]), int(n * scale), replace=False))]
            for k, n in sizes.items()}

    def old_sv(t):
        return enc.encode(t, batch_size=64, convert_to_numpy=True, show_progress_bar=False)

    def old_joint(t):
        tok = [x.float().numpy() for x in enc.encode(t, output_value="token_embeddings", batch_size=32,
                                                      show_progress_bar=False)]
        return old_sv(t), tok

    plan = {w: {"old": old_sv, "new": lambda t: encode_by_length(enc, t)} for w in work}
    plan["scifact_docs"] = {"old": old_joint, "new": lambda t: encode_by_length(enc, t, tokens=True)}
    res, diffs = {}, {}
    with autocast("fp32"):
        old_sv(work["ag"][:32])
        encode_by_length(enc, work["ag"][:32])
        for rep in range(repeats):
            for w, texts in work.items():
                names = list(plan[w])
                np.random.default_rng(rep).shuffle(names)
                outs = {}
                for v in names:
                    outs[v], wall, cpu = timed(lambda: plan[w][v](texts))
                    res.setdefault((w, v), []).append((wall, cpu))
                a, b = outs["old"], outs["new"]
                if isinstance(a, tuple):
                    a, b = a[0], b[0]
                diffs[w] = max(diffs.get(w, 0.0), float(np.abs(a - b).max()))
    for w in work:
        b, n = np.array(res[(w, "old")]), np.array(res[(w, "new")])
        wall, cpu = stats.median_ratio(b[:, 0], n[:, 0]), stats.median_ratio(b[:, 1], n[:, 1])
        print(f"{w:13s} old/new: wall {wall.format(3, 'x')}, user+sys CPU {cpu.format(3, 'x')} "
              f"({repeats} repeats; median old {np.median(b[:, 0]):.1f} s, new {np.median(n[:, 0]):.1f} s); "
              f"largest vector change {diffs[w]:.1e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5, float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)
