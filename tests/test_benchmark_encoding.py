"""The encoding benchmark's pure helpers (the benchmark itself runs by `make benchmark`, not here)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("encoding_benchmark",
                                              Path(__file__).resolve().parents[1] / "benchmarks" / "encoding.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_flops_per_text_counts_matmuls_and_attention():
    # one token: 6 layers x 2 x (4 d^2 + 2 d f) for the weights, + 6 x 4 d for attention
    assert bench.flops_per_text(1) == 6 * (2 * (4 * 384 ** 2 + 2 * 384 * 1536) + 4 * 384)
    # attention grows with the square of the length, the weights linearly
    weights = 6 * 2 * (4 * 384 ** 2 + 2 * 384 * 1536)
    assert bench.flops_per_text(100) - 100 * weights == pytest.approx(6 * 4 * 100 ** 2 * 384)


def test_bf16_only_with_native_instructions():
    assert bench.has_native_bf16({"avx512f", "avx512_bf16"}) and bench.has_native_bf16({"amx_bf16"})
    assert not bench.has_native_bf16({"avx2", "avx512f", "avx512_vnni"})


def test_bad_arguments_stop_before_any_work(capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--repeats", "3"])
    assert stop.value.code == 2 and "--repeats >= 5" in capsys.readouterr().err


def test_the_onnx_export_encodes_like_sentence_transformers(tmp_path):
    from embrepro import models

    model = models.load_encoder(device="cpu")
    onnx = bench.export_onnx(model, tmp_path / "l6.onnx")
    texts = ["A man is playing a guitar.", "Protein folding is driven by hydrophobic collapse.",
             "short", "The stock market fell sharply after the announcement on Tuesday morning."]
    ours = onnx.encode(texts, batch_size=3)  # two batches of different padded lengths
    reference = model.encode(texts, convert_to_numpy=True)
    assert ours.shape == (4, 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert np.sum(ours * reference, axis=1).min() > 0.99999
