"""The machine's encoding precision: the rule, its override, its errors, and what bf16 costs MiniLM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embrepro import precision
from embrepro.precision import PrecisionError, anchors_hold, default_precision, has_native_bf16


def test_cpu_flags_read_from_a_cpuinfo_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\nbugs\t\t: none\n")
    assert precision.cpu_flags(str(info)) == frozenset({"fpu", "sse", "avx512f", "avx512_bf16"})
    assert precision.cpu_flags(str(tmp_path / "absent")) == frozenset()


@pytest.mark.parametrize("flags, native", [({"avx512_bf16"}, True), ({"amx_bf16", "avx2"}, True),
                                           ({"avx512f", "avx2"}, False), (set(), False)])
def test_bf16_is_the_default_only_where_the_cpu_has_it(flags, native):
    assert has_native_bf16(flags) is native
    assert default_precision(flags, environ={}) == ("bf16" if native else "fp32")


def test_the_environment_overrides_the_rule_and_is_checked():
    assert default_precision({"avx512_bf16"}, environ={precision.ENV: "fp32"}) == "fp32"
    assert default_precision({"avx512_bf16"}, environ={precision.ENV: " bf16 "}) == "bf16"
    with pytest.raises(PrecisionError, match="emulated"):
        default_precision({"avx2"}, environ={precision.ENV: "bf16"})
    with pytest.raises(PrecisionError, match="expected one of fp32, bf16"):
        default_precision({"avx2"}, environ={precision.ENV: "fp16"})


def test_anchor_rule_can_fail():
    assert anchors_hold({"stsb": 0.011, "scifact": -0.020})
    assert not anchors_hold({"stsb": 0.011, "scifact": -0.06})  # one anchor moved too far
    assert not anchors_hold({"stsb": -1.35})                    # int8's measured STS-B change
    assert not anchors_hold({})                                  # no evidence is not a pass
    assert not anchors_hold({"stsb": math.nan})
    assert anchors_hold({"stsb": 0.05})                          # the tolerance is inclusive


def test_autocast_computes_in_bf16_only_when_asked():
    import torch

    a = torch.randn(8, 8)
    with precision.autocast("fp32"):
        assert torch.mm(a, a).dtype == torch.float32
    with precision.autocast("bf16"):
        assert torch.mm(a, a).dtype == torch.bfloat16
    with pytest.raises(PrecisionError):
        with precision.autocast("int8"):
            pass


@pytest.mark.skipif(not has_native_bf16(), reason="this CPU has no native bf16")
def test_minilm_bf16_encodings_are_close_to_fp32_but_not_identical(tmp_path, monkeypatch):
    from embrepro import models, retrieval

    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path))
    encoder = models.load_encoder(device="cpu")
    texts = ["A man is playing a guitar.", "Protein folding is driven by hydrophobic collapse.",
             "The cat sat on the mat.", "Stocks fell sharply after the announcement."]
    fp32 = retrieval.minilm_cache(encoder, precision="fp32").get(texts)
    bf16 = retrieval.minilm_cache(encoder, precision="bf16").get(texts)
    assert fp32.dtype == bf16.dtype == np.float32 and fp32.shape == bf16.shape == (4, 384)
    cos = np.sum(fp32 * bf16, axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.999                   # the benchmark's mean is 0.99998
    assert np.abs(fp32 - bf16).max() > 1e-6    # and it really ran in bf16 (not a silent fp32)
