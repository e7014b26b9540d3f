"""The news loaders (20 Newsgroups, AG News), their stratified subsets, and the shared spaces cache."""

import numpy as np
import pytest

from embrepro import spaces
from embrepro.data import news


def test_strip_newsgroup_message_drops_headers_quotes_and_signature():
    raw = ("From: a@b.c\nSubject: cars\n\nIn article <1@x> bob writes:\n> old text\n| more old\n"
           "My own point.\nSecond line.\n--\nBob, Somewhere Inc.\n")
    assert news.strip_newsgroup_message(raw) == "My own point.\nSecond line."
    assert news.strip_newsgroup_message(raw, remove=()).startswith("From: a@b.c")
    kept_quotes = news.strip_newsgroup_message(raw, remove=("headers",))
    assert "> old text" in kept_quotes and "Bob, Somewhere" in kept_quotes
    with pytest.raises(ValueError, match="remove takes"):
        news.strip_newsgroup_message(raw, remove=("signature",))


def test_a_long_tail_after_dashes_is_not_a_signature():
    body = "text\n--\n" + "\n".join(f"line {i}" for i in range(12))
    assert news.strip_newsgroup_message(body, remove=("footers",)) == body


def test_load_20newsgroups_matches_the_bydate_split():
    test = news.load_20newsgroups("test")
    assert len(test.classes) == 20 and test.classes[0] == "alt.atheism"
    # 7,532 messages; the few left empty once headers, quotes and signatures are gone are dropped
    assert 7_450 < len(test) <= 7_532 and all(test.texts)
    # headers gone: a "From:" line survives only where a body forwards another message
    assert sum(t.startswith(("From:", "Subject:")) for t in test.texts) < 0.01 * len(test)
    raw = news.load_20newsgroups("test", remove=())
    assert sum(t.startswith("From:") for t in raw.texts) > 0.9 * len(raw)
    assert len(news.load_20newsgroups("test", remove=(), drop_empty=False)) == 7_532
    with pytest.raises(ValueError, match="split"):
        news.load_20newsgroups("dev")


def test_load_ag_news_has_four_balanced_classes_and_clean_text():
    ag = news.load_ag_news()
    assert len(ag) == 7_600 and np.bincount(ag.labels).tolist() == [1_900] * 4
    assert ag.texts[0] == ("Fears for T N pension after talks. Unions representing workers at Turner Newall "
                           "say they are 'disappointed' after talks with stricken parent firm Federal Mogul.")
    assert "$10 million" in ag.texts[1] and not any("#36;" in t or "\\" in t for t in ag.texts)


def test_subset_is_stratified_seeded_and_exact():
    ag = news.load_ag_news()
    a, b, c = news.subset(ag, 102, seed=3), news.subset(ag, 102, seed=3), news.subset(ag, 102, seed=4)
    assert len(a) == 102 and a.texts == b.texts and a.texts != c.texts
    assert sorted(np.bincount(a.labels).tolist()) == [25, 25, 26, 26]
    assert set(a.ids) <= set(ag.ids) and [int(i) for i in a.ids] == sorted(int(i) for i in a.ids)
    assert news.subset(ag, 10_000) is ag
    with pytest.raises(ValueError):
        news.subset(ag, 0)


def test_spaces_share_one_cache_per_text_list(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path))
    spaces.cache.cache_clear()
    texts = ["a cat sat on the mat", "stock markets fell today", "qwertyuiop"]
    first = spaces.encode("glove", texts)
    assert first.shape == (3, 50) and first.dtype == np.float32
    assert np.allclose(first[2], 0)  # no known word: a zero vector
    glove = spaces.encoder("glove").vectors
    assert np.allclose(first[1], glove[["stock", "markets", "fell", "today"]].mean(axis=0), atol=1e-6)
    again = spaces.encode("glove", texts)
    assert np.array_equal(first, again) and spaces.cache("glove").hits == 1
    with pytest.raises(ValueError, match="unknown space"):
        spaces.encode("bert", texts)
    with pytest.raises(TypeError):
        spaces.encode("glove", ["ok", 3])
    spaces.cache.cache_clear()


def test_encode_with_shares_the_stock_minilm_and_leaves_other_models_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path))
    spaces.cache.cache_clear()
    texts = ["a cat sat on the mat", "stock markets fell today", "the cat is on the mat"]
    model = spaces.encoder("minilm")
    shared = spaces.encode_with("sentence-transformers/all-MiniLM-L6-v2", model, texts)
    assert spaces.cache("minilm").misses == 1
    assert np.array_equal(spaces.encode("minilm", texts), shared) and spaces.cache("minilm").hits == 1
    direct = model.encode(texts, convert_to_numpy=True)
    assert np.allclose(shared, direct, atol=1e-5)  # the same vectors up to float rounding
    calls = []

    class Other:  # a model the chapter was given instead: it encodes the texts itself, uncached
        def encode(self, batch, **kwargs):
            calls.append((list(batch), kwargs["batch_size"]))
            return np.ones((len(batch), 4))

    out = spaces.encode_with("my/other-model", Other(), texts, batch_size=7)
    assert out.shape == (3, 4) and out.dtype == np.float32 and calls == [(texts, 7)]
    assert spaces.cache("minilm").hits == 1 and spaces.cache("minilm").misses == 1
    spaces.cache.cache_clear()
