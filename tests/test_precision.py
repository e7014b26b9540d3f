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


GOOD = {"native_bf16": True, "anchor_changes": {"STS-B": 0.01, "SciFact": -0.02, "LIMIT-small": 0.05}}
BAD = {"native_bf16": True, "anchor_changes": {"STS-B": 0.01, "SciFact": -0.02, "LIMIT-small": 0.5}}


@pytest.mark.parametrize("flags, native", [({"avx512_bf16"}, True), ({"amx_bf16", "avx2"}, True),
                                           ({"avx512f", "avx2"}, False), (set(), False)])
def test_bf16_only_with_native_instructions_and_evidence(flags, native):
    assert has_native_bf16(flags) is native
    assert default_precision(flags, environ={}, proof=GOOD) == ("bf16" if native else "fp32")
    assert default_precision(flags, environ={}, proof=BAD) == "fp32"   # one anchor moved 0.5 points
    assert default_precision(flags, environ={}, proof=None) == "fp32"  # a machine nobody measured


def test_evidence_is_recorded_per_cpu_model_and_read_back(tmp_path):
    path = precision.write_evidence({"STS-B": 0.01, "LIMIT-small": 0.05}, native=True, model="Test CPU @ 2GHz",
                                    root=tmp_path, docs_per_s={"fp32": 35.0})
    assert path == tmp_path / "results" / "precision" / "test-cpu-2ghz.json"
    proof = precision.evidence("Test CPU @ 2GHz", root=tmp_path)
    assert proof["bf16_qualifies"] is True and proof["docs_per_s"] == {"fp32": 35.0}
    assert default_precision({"amx_bf16"}, environ={}, proof=proof) == "bf16"
    precision.write_evidence({"STS-B": 0.2}, native=True, model="Test CPU @ 2GHz", root=tmp_path)
    assert precision.evidence("Test CPU @ 2GHz", root=tmp_path)["bf16_qualifies"] is False
    assert precision.evidence("Other CPU", root=tmp_path) is None
    path.write_text("{not json")
    assert precision.evidence("Test CPU @ 2GHz", root=tmp_path) is None


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
    assert anchors_hold({"limit": 16.25 - 16.2})                 # 0.0500000000000007 in floats
    assert not anchors_hold({"limit": 0.051})


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
