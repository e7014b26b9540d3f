import pytest

from embrepro import data, evaluation, models
from embrepro.models import ModelError


def test_minilm_weights_are_verified(monkeypatch):
    path = models.minilm_path()
    assert (path / "model.safetensors").stat().st_size == 90_868_376
    monkeypatch.setattr(models, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="0{64}"):
        models.minilm_path()


def test_device_auto_is_cpu_without_a_gpu():
    import torch

    assert models.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no GPU"):
            models.resolve_device("cuda")


def test_seeding_makes_cpu_runs_repeatable():
    import torch

    models.set_seed(7)
    a = torch.randn(5)
    models.set_seed(7)
    assert torch.equal(a, torch.randn(5))


def test_minilm_matches_the_official_mteb_stsb_score():
    encoder = models.load_encoder("all-MiniLM-L6-v2", device="cpu")
    result = evaluation.evaluate_sts(lambda texts: encoder.encode(texts, batch_size=64), data.load_stsb("test"))
    assert result.spearman == pytest.approx(82.03, abs=0.3)
