"""The IMDB loader: both labelled splits, balanced, markup removed, tokenised like the book."""

from collections import Counter

import pytest

from embrepro import data


@pytest.fixture(scope="module")
def imdb():
    return {split: data.load_imdb(split) for split in ("train", "test")}


def test_each_split_has_12500_reviews_per_class(imdb):
    for split, docs in imdb.items():
        assert len(docs) == len(docs.tokens) == len(docs.ratings) == len(docs.ids) == 25_000
        assert Counter(docs.labels) == {1: 12_500, 0: 12_500}, split
        assert docs.split == split and all(i.startswith(f"{split}/") for i in docs.ids)


def test_positives_come_first_and_labels_agree_with_the_stars(imdb):
    docs = imdb["train"]
    assert docs.labels[:12_500] == [1] * 12_500 and docs.labels[12_500:] == [0] * 12_500
    for label, rating, doc_id in zip(docs.labels, docs.ratings, docs.ids):
        assert (rating >= 7) if label else (rating <= 4), doc_id
        assert doc_id.split("/")[1] == ("pos" if label else "neg")
    assert docs.ids[0] == "train/pos/0_9"  # file 0_9.txt: the first positive review


def test_html_breaks_are_removed_and_tokens_match_tokenize(imdb):
    docs = imdb["test"]
    assert not any("br" in tokens for tokens in docs.tokens[:5000])
    assert all(t == t.lower() and t.replace("'", "").isalpha() for tokens in docs.tokens[:200] for t in tokens)
    assert data.tokenize_review("A <br />great<br/>film, 10/10!<BR>Really.") == ["a", "great", "film", "really"]
    assert data.tokenize("A <br />great") == ["a", "br", "great"]  # why the markup must go first
    mean_length = sum(map(len, docs.tokens)) / len(docs)
    assert 200 < mean_length < 260  # reviews average about 230 words


def test_balanced_sample_is_balanced_reproducible_and_in_order(imdb):
    docs = imdb["train"]
    a, b = docs.balanced_sample(300, seed=4), docs.balanced_sample(300, seed=4)
    assert Counter(a.labels) == {1: 300, 0: 300} and a.ids == b.ids
    assert a.ids != docs.balanced_sample(300, seed=5).ids
    positions = [docs.ids.index(i) for i in a.ids[:50]]
    assert positions == sorted(positions)
    assert docs.balanced_sample(None) is docs
    with pytest.raises(ValueError):
        docs.balanced_sample(12_501)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError):
        data.load_imdb("unsup")
