"""Tests of embrepro.distill: unlabelled pairs, retention, interleaved timing, teacher training."""

import numpy as np
import pytest

from embrepro import distill, stats


def test_repaired_pairs_are_new_distinct_and_deterministic():
    sentences = ["a", "b", "c", "d", "a"]                      # a duplicate sentence counts once
    exclude = [("a", "b"), ("d", "c")]
    pairs = distill.repaired_pairs(sentences, 4, seed=3, exclude=exclude)
    assert pairs == distill.repaired_pairs(sentences, 4, seed=3, exclude=exclude)
    assert len(pairs) == 4
    keys = {tuple(sorted(p)) for p in pairs}
    assert len(keys) == 4                                     # no pair twice, in either order
    assert all(a != b for a, b in pairs)
    assert not keys & {("a", "b"), ("c", "d")}               # exclusions hold in either order
    # 4 sentences give 6 pairs; 2 are excluded, so exactly the other 4 must come back
    assert keys == {("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")}
    with pytest.raises(ValueError, match="could not draw"):
        distill.repaired_pairs(sentences, 5, seed=3, exclude=exclude)
    with pytest.raises(ValueError, match="only 6 pairs"):
        distill.repaired_pairs(sentences, 7)


def test_mix_pairs_takes_equal_shares_and_skips_duplicates():
    sources = {"x": [("a", "b"), ("b", "a"), ("c", "d"), ("e", "e")],
               "y": [("a", "b"), ("f", "g"), ("h", "i"), ("j", "k")]}
    pairs, origin = distill.mix_pairs(sources, 3, seed=0, exclude=[("k", "j")])
    assert origin.count("x") == 2 and origin.count("y") == 1     # remainder to the first source
    keys = [tuple(sorted(p)) for p in pairs]
    assert len(set(keys)) == 3
    assert ("e", "e") not in pairs and ("j", "k") not in keys     # self-pairs and exclusions skipped
    assert set(keys[:2]) == {("a", "b"), ("c", "d")}             # "x" has only these two usable pairs
    with pytest.raises(ValueError, match="only 2 usable"):
        distill.mix_pairs(sources, 5, seed=0)
    assert distill.mix_pairs(sources, 0) == ([], [])


def test_retention_hand_values_and_pairing():
    gold = np.arange(20, dtype=float)
    teacher = gold.copy()                                        # Spearman 100
    rng = np.random.default_rng(0)
    noisy = gold + rng.normal(scale=4.0, size=20)
    iv = distill.retention(noisy, teacher, gold, n_boot=200, seed=1)
    assert iv.estimate == pytest.approx(stats.spearman(noisy, gold))   # teacher at 100: retention = student's Spearman
    assert iv.low <= iv.estimate <= iv.high < 100.0 + 1e-9
    same = distill.retention(teacher, teacher, gold, n_boot=200)
    assert same.estimate == same.low == same.high == pytest.approx(100.0)   # paired: every resample gives 100
    # A student better than the teacher keeps more than 100%.
    half = np.where(np.arange(20) % 2 == 0, gold, gold[::-1])
    assert distill.retention(teacher, half + gold, gold, n_boot=100).estimate > 100
    with pytest.raises(ValueError, match="not positive"):
        distill.retention(noisy, -gold, gold)
    with pytest.raises(ValueError, match="aligned"):
        distill.retention(noisy[:5], teacher, gold)


def test_interleaved_timings_alternate_order_warm_up_and_count():
    calls = []
    ticks = iter(range(1000))
    jobs = {"slow": lambda r: calls.append(("slow", r)), "fast": lambda r: calls.append(("fast", r))}
    out = distill.interleaved_timings(jobs, repeats=5, clock=lambda: float(next(ticks)))
    assert calls[:2] == [("slow", 0), ("fast", 0)]               # one warm-up call each
    timed = calls[2:]
    assert timed[:4] == [("slow", 0), ("fast", 0), ("fast", 1), ("slow", 1)]   # order alternates
    assert len(timed) == 10 and {len(v) for v in out.values()} == {5}
    assert all(v == 1.0 for v in out["slow"] + out["fast"])      # one clock tick per call
    with pytest.raises(ValueError, match="at least 5"):
        distill.interleaved_timings(jobs, repeats=4)


def test_interleaved_timings_feed_a_ratio_that_can_fail():
    # A job that is not faster must give a ratio whose interval reaches below a 100x bar.
    import time
    work = {"cross": lambda r: time.sleep(0.002), "bi": lambda r: time.sleep(0.002)}
    t = distill.interleaved_timings(work, repeats=5)
    ratio = stats.median_ratio(t["cross"], t["bi"], n_boot=200)
    from embrepro.claims import Outcome, Ratio
    assert Ratio(what="speed-up", bar=100.0).judge(ratio) == Outcome.NOT_REPRODUCED


def test_query_search_counts():
    assert distill.query_search_counts(1000) == {"cross-encoder pair passes": 1000,
                                                 "bi-encoder sentence passes": 1, "bi-encoder dot products": 1000}
    with pytest.raises(ValueError):
        distill.query_search_counts(0)


torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _tiny_cross(seed=0):
    """A one-layer BERT cross-encoder with a random start and the MiniLM tokenizer."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from embrepro.models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=1, max_position_embeddings=64)
    return SimpleNamespace(model=BertForSequenceClassification(config), tokenizer=tokenizer)


def _toy_pairs():
    # a learnable toy task for a network that starts random: the words "same" / "different" tell the target
    words = ["cat", "dog", "car", "tree", "house", "river", "music", "bread"]
    pairs, targets = [], []
    for i, w in enumerate(words):
        v = words[(i + 3) % len(words)]
        pairs += [(f"{w} same", f"{w} same"), (f"{w} different", f"{v} different")]
        targets += [1.0, 0.0]
    return pairs, np.array(targets)


def test_train_cross_encoder_counts_its_budget_is_deterministic_and_learns():
    pairs, targets = _toy_pairs()

    def run():
        cross = _tiny_cross()
        log = distill.train_cross_encoder(cross, pairs, targets, steps=60, batch_size=8, lr=1e-2, seed=2,
                                          warmup=0.1, progress=False)
        return cross, log

    (c1, log1), (_, log2) = run(), run()
    assert log1.losses == log2.losses
    assert len(log1.losses) == 60 and log1.examples == 60 * 8
    assert np.mean(log1.losses[-5:]) < np.mean(log1.losses[:5])
    scores = distill.score_pairs(c1, pairs, batch_size=5)
    assert scores.shape == (len(pairs),) and np.all((scores > 0) & (scores < 1))
    assert scores[targets == 1].mean() > scores[targets == 0].mean() + 0.2      # it learnt the toy task
    assert not c1.model.training


def test_train_cross_encoder_rejects_bad_input():
    pairs, targets = _toy_pairs()
    cross = _tiny_cross()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        distill.train_cross_encoder(cross, pairs, targets * 5, steps=1, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="targets for"):
        distill.train_cross_encoder(cross, pairs, targets[:3], steps=1, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="fill a batch"):
        distill.train_cross_encoder(cross, pairs[:2], targets[:2], steps=1, batch_size=4, progress=False)


def test_a_minilm_student_trains_with_the_fixed_budget_trainer():
    # sentence-transformers 6 puts a non-tensor entry ("modality") into a transformer's features;
    # contrastive.train_steps must pass it through instead of moving it to the device.
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    from embrepro import contrastive
    from embrepro.models import load_encoder

    model = load_encoder(device="cpu")
    pairs = [("a man plays a guitar", "a man is playing guitar"), ("a dog runs", "the stock market fell")] * 2
    log = contrastive.train_steps(model, CosineSimilarityLoss(model), pairs, labels=np.array([1, 0, 1, 0], np.float32),
                                  steps=2, batch_size=2, lr=1e-5, seed=0, progress=False)
    assert log.examples == 4 and len(log.losses) == 2 and all(np.isfinite(log.losses))
