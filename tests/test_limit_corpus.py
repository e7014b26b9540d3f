import itertools
from collections import Counter

import pytest

from embrepro import limit_corpus, retrieval


@pytest.fixture(scope="module")
def vocab():
    return limit_corpus.limit_vocabulary()


def test_vocabulary_comes_from_both_limit_query_files(vocab):
    small = {t[len("Who likes "):-1] for t in retrieval.load_limit_small().queries.values()}
    assert small <= set(vocab.attributes)
    assert len(vocab.attributes) > 1000 + 45
    assert "Joshua Trees" in vocab.attributes and "Birch Trees" in vocab.attributes
    assert "Geneva" in vocab.first_names and "Durben" in vocab.surnames


def test_dense_pool_size():
    assert limit_corpus.dense_pool_size(1000, 2) == 46  # LIMIT's 46 relevant people
    assert limit_corpus.dense_pool_size(10, 2) == 5 and limit_corpus.dense_pool_size(11, 2) == 6
    assert limit_corpus.dense_pool_size(10, 3) == 5


def test_likes_sentence():
    assert limit_corpus.likes_sentence("Ann Lee", ["Tea", "Owls", "Rain"]) == "Ann Lee likes Tea, Owls and Rain."
    assert limit_corpus.likes_sentence("Ann Lee", ["Tea"]) == "Ann Lee likes Tea."


def test_limit_likes_follows_the_papers_construction(vocab):
    built = limit_corpus.limit_likes(300, n_queries=1000, k=2, items_per_doc=45, seed=1, vocabulary=vocab)
    assert built.pool == 46 and len(built.likes) == 300
    # the relevant pairs are the first 1,000 pairs of the pool in lexical order: all distinct
    assert built.relevant == list(itertools.islice(itertools.combinations(range(46), 2), 1000))
    assert len(set(built.asked)) == 1000  # each query has its own attribute
    holders = {}
    for p, items in enumerate(built.likes):
        assert len(items) == len(set(items)) >= 45
        for item in items:
            holders.setdefault(item, set()).add(p)
    # an asked-about attribute is liked by exactly its query's people, and by nobody else
    for item, subset in zip(built.asked, built.relevant):
        assert holders[item] == set(subset)
    asked = set(built.asked)
    for p in range(46, 300):  # distractors like exactly 45 things, none of them asked about
        assert len(built.likes[p]) == 45 and not asked & set(built.likes[p])
    counts = Counter(p for subset in built.relevant for p in subset)
    assert set(counts) == set(range(46)) and max(counts.values()) == 45


def test_make_limit_writes_limit_documents(vocab):
    data = limit_corpus.make_limit(60, seed=2, vocabulary=vocab)
    assert len(data.corpus) == 60 and len(data.queries) == 1000
    assert all(len(rel) == 2 for rel in data.qrels.values())
    text = data.corpus["person_50"]["text"]
    assert " likes " in text and text.endswith(".") and text.count(", ") >= 43
    assert data.queries["query_0"].startswith("Who likes ") and data.queries["query_0"].endswith("?")


def test_make_limit_is_seeded_and_nested(vocab):
    a = limit_corpus.make_limit(120, seed=3, vocabulary=vocab)
    b = limit_corpus.make_limit(120, seed=3, vocabulary=vocab)
    c = limit_corpus.make_limit(120, seed=4, vocabulary=vocab)
    assert a.corpus == b.corpus and a.queries == b.queries
    assert a.queries != c.queries
    sub = limit_corpus.subcorpus(a, a.doc_ids[:46])
    assert len(sub.corpus) == 46 and sub.qrels == a.qrels
    with pytest.raises(ValueError, match="relevant"):
        limit_corpus.subcorpus(a, a.doc_ids[1:60])
    with pytest.raises(ValueError, match="pool"):
        limit_corpus.make_limit(40, vocabulary=vocab)


def test_bm25_finds_limit_style_relevant_documents(vocab):
    # The construction puts each asked-about attribute only in its relevant documents, so a
    # lexical retriever should rank them first: the property that makes LIMIT easy for BM25.
    data = limit_corpus.make_limit(400, n_queries=200, seed=0, vocabulary=vocab)
    mean, _ = retrieval.evaluate_run(data.qrels, retrieval.bm25_run(data, k=10), ["recall@10"])
    assert mean["recall@10"] > 90


def test_dense_pool_size_hand_values():
    # C(45, 2) = 990 < 1,000 <= C(46, 2) = 1,035 (LIMIT's 46); C(20, 2) = 190 < 200 <= C(21, 2) = 210;
    # k = 3: C(10, 3) = 120 < 200 <= C(12, 3) = 220, with C(11, 3) = 165 still short.
    assert limit_corpus.dense_pool_size(1000) == 46
    assert limit_corpus.dense_pool_size(200) == 21
    assert limit_corpus.dense_pool_size(200, k=3) == 12
    assert limit_corpus.dense_pool_size(1) == 2


def test_make_limit_smaller_corpus_is_the_start_of_a_larger_one(vocab):
    # so that a book-profile corpus (5,000) is the first block of the paper's (50,000) and shares its cache
    small = limit_corpus.make_limit(80, seed=5, vocabulary=vocab)
    large = limit_corpus.make_limit(250, seed=5, vocabulary=vocab)
    assert small.doc_ids == large.doc_ids[:80]
    assert all(small.corpus[d] == large.corpus[d] for d in small.doc_ids)
    assert small.queries == large.queries and small.qrels == large.qrels
