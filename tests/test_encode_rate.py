"""The shared cold-encoding estimate: sample, warm-up and scaling."""

import time

import numpy as np
import pytest

from embrepro.retrieval import encode_rate


def test_rate_scales_with_text_count_and_warms_up_first():
    calls = []

    def encode(texts):
        calls.append(len(texts))
        time.sleep(0.01 * len(texts) if len(calls) > 1 else 0.5)  # the first call is slow (one-off cost)
        return np.zeros((len(texts), 3))

    rate = encode_rate(encode, [f"t{i}" for i in range(100)], sample=20, warmup=4)
    assert calls == [4, 20]                        # warm-up call, then the timed sample only
    assert 60 < rate.texts_per_s < 101             # about 100 texts/s; the slow first call is not timed
    assert rate.sample == 20
    assert rate.estimate(1000) == pytest.approx(1000 / rate.texts_per_s)


def test_sample_is_random_not_a_prefix():
    seen = []
    encode_rate(lambda texts: seen.append(list(texts)), [str(i) for i in range(1000)], sample=10, warmup=0)
    assert seen[0] != [str(i) for i in range(10)]
    assert len(set(seen[0])) == 10


def test_bad_arguments():
    with pytest.raises(ValueError):
        encode_rate(lambda t: None, [], sample=5)
    with pytest.raises(ValueError):
        encode_rate(lambda t: None, ["a"], sample=0)
