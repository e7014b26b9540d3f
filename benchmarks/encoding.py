"""How fast MiniLM encodes text on this machine, at each precision, and what each precision costs.

Run with ``make benchmark`` (not part of the tests). Variants, measured side by side in one run:

* ``fp32``: the model as published;
* ``bf16``: the same model under ``torch.autocast("cpu", dtype=torch.bfloat16)``, only where the
  CPU has native bf16 instructions (AVX512-BF16 or AMX-BF16; otherwise it is emulated and slow);
* ``int8``: dynamic int8 quantisation of every ``nn.Linear`` (``torch.ao.quantization``);
* ``onnx-fp32``: another backend at fp32: the transformer exported to ONNX (into ``--out``) and run
  by ONNX Runtime through the book's ``OnnxSentenceEncoder`` (mean pooling, then unit length).

For each variant: documents/s and tokens/s on a seeded sample of SciFact abstracts (the book's
hottest encoding path), timed in interleaved repeats after a warm-up, so the speed-up over fp32 is a
median of per-repeat ratios (``embrepro.stats.median_ratio``); an estimate of the GFLOP/s reached,
against the machine's peak measured by a large torch matrix product at the same precision (fp32,
also for ONNX Runtime, and bf16; no int8 peak is measured, so int8 gets no share of peak); the mean
cosine of each embedding to its fp32 embedding; and the score change of the book's MiniLM anchors:
STS-B test (Spearman x 100), a SciFact sub-corpus (nDCG@10 x 100) and LIMIT-small (recall@2 x 100).
The table is printed and written as JSON and CSV under ``_build/benchmarks/``; the anchors' change under bf16 is
recorded for this CPU model under ``results/precision/`` (the evidence ``embrepro.precision``'s
default reads). Take timings on a quiet machine: nothing else running.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from embrepro.precision import (ANCHOR_TOLERANCE, anchors_hold, cpu_flags, default_precision, has_native_bf16,
                                write_evidence)

LAYERS, WIDTH, FFN = 6, 384, 1536  # all-MiniLM-L6-v2


def flops_per_text(tokens: int) -> float:
    """Multiply-add FLOPs of one text of ``tokens`` word pieces through MiniLM-L6 (weights' matmuls
    plus attention scores and mixing; embeddings, norms and softmax left out)."""
    dense = 2 * (4 * WIDTH * WIDTH + 2 * WIDTH * FFN) * tokens
    attention = 2 * 2 * tokens * tokens * WIDTH
    return LAYERS * (dense + attention)


def matmul_peak(dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` square matrix products at ``dtype`` (the practical peak)."""
    import torch

    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


class NormalisedOnnx:
    """MiniLM-L6 exported to ONNX and run by ONNX Runtime (fp32): the book's ONNX encoder (mean
    pooling), then unit length, as the sentence-transformers model's Normalize layer does."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode(self, texts, batch_size: int = 32, **_):
        return self.encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True)


def export_onnx(model, path: Path) -> NormalisedOnnx:
    """Export the transformer of a sentence-transformers MiniLM to ONNX (opset 17, dynamic batch
    and length; needs the ``onnx`` package) and load it with :class:`embrepro.models.OnnxSentenceEncoder`."""
    import torch

    from embrepro import models
    from embrepro.derived import sha256_file

    class TokenStates(torch.nn.Module):
        def __init__(self, transformer):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state

    batch = model.tokenizer(["an example", "a slightly longer example sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]}
    with torch.no_grad():
        torch.onnx.export(TokenStates(model[0].auto_model.eval()), tuple(batch[n] for n in names), str(path),
                          input_names=names, output_names=["token_embeddings"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    tokenizer = Path(model.tokenizer.name_or_path) / "tokenizer.json"
    if not tokenizer.is_file():
        tokenizer = Path(models.encoder_source(models.MINILM)) / "tokenizer.json"
    digest = sha256_file(path)
    return NormalisedOnnx(models.OnnxSentenceEncoder(path, tokenizer, "all-MiniLM-L6-v2 (ONNX export)", digest,
                                                     max_seq_length=model.max_seq_length))


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=128, help="SciFact abstracts timed per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed repeats (at least 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--subcorpus", type=int, default=600, help="SciFact documents for the nDCG@10 check")
    parser.add_argument("--out", default="_build/benchmarks", help="folder for encoding.json and encoding.csv")
    args = parser.parse_args(argv)
    if args.repeats < 5 or args.docs < 8 or args.batch_size < 1 or args.subcorpus < 1:
        parser.error("need --repeats >= 5, --docs >= 8, --batch-size >= 1, --subcorpus >= 1")

    import torch
    from scipy.stats import spearmanr
    from tqdm.auto import tqdm

    from embrepro import data, models, retrieval, stats, subcorpus
    from embrepro.paths import threads

    torch.set_num_threads(threads())
    flags = cpu_flags()
    fp32 = models.load_encoder(device="cpu")
    variants = {"fp32": (fp32, nullcontext)}
    if has_native_bf16(flags):
        variants["bf16"] = (fp32, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    else:
        print("bf16 left out: this CPU has neither AVX512-BF16 nor AMX-BF16", file=sys.stderr)
    int8 = copy.deepcopy(fp32)
    torch.ao.quantization.quantize_dynamic(int8, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    left = [n for n, m in int8.named_modules() if type(m) is torch.nn.Linear]
    if left:  # a silent no-op would report fp32 as int8
        raise RuntimeError(f"dynamic quantisation left {len(left)} float Linear layers, e.g. {left[0]}")
    variants["int8"] = (int8, nullcontext)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants["onnx-fp32"] = (export_onnx(fp32, out / "all-MiniLM-L6-v2.onnx"), nullcontext)

    def encode(name, texts):
        model, context = variants[name]
        with torch.inference_mode(), context():
            out = model.encode(list(texts), batch_size=args.batch_size, convert_to_numpy=True,
                               show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    scifact = data.load_scifact()
    gold = {d for rel in scifact.qrels.values() for d, grade in rel.items() if grade > 0}
    if args.subcorpus < len(gold):
        parser.error(f"--subcorpus must keep SciFact's {len(gold)} relevant documents; got {args.subcorpus}")
    abstracts = scifact.doc_texts()
    rng = np.random.default_rng(0)
    sample = [abstracts[i] for i in sorted(rng.choice(len(abstracts), size=args.docs, replace=False))]
    tokenizer = fp32.tokenizer
    lengths = [len(tokenizer(t, truncation=True, max_length=fp32.max_seq_length)["input_ids"]) for t in sample]
    flops = sum(flops_per_text(n) for n in lengths)

    times = {name: [] for name in variants}
    for name in variants:  # warm-up: one-off costs (kernels, thread pools) out of the timings
        encode(name, sample[:16])
    bar = tqdm(total=args.repeats * len(variants), desc="timed encodings (repeats x variants, interleaved)")
    for _ in range(args.repeats):
        for name in variants:
            start = time.perf_counter()
            encode(name, sample)
            times[name].append(time.perf_counter() - start)
            bar.update(1)  # outside the timed interval
    bar.close()

    peaks = {"fp32": matmul_peak(torch.float32)}
    peaks["onnx-fp32"] = peaks["fp32"]  # the same fp32 arithmetic, another runtime
    if "bf16" in variants:
        peaks["bf16"] = matmul_peak(torch.bfloat16)

    stsb = data.load_stsb("test")
    limit_small = retrieval.load_limit_small()
    sub = subcorpus.gold_plus_distractors(scifact, args.subcorpus, seed=0)
    reference = {}
    rows = []
    for name in tqdm(list(variants), desc="scores per variant"):
        e1, e2 = encode(name, stsb.sentences1), encode(name, stsb.sentences2)
        cos = np.sum(e1 * e2, axis=1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
        sts = 100 * spearmanr(cos, stsb.scores).statistic
        ndcg = subcorpus.dense_evaluation(lambda t, n=name: encode(n, t), sub, ("ndcg@10",))[0]["ndcg@10"]
        limit_r2 = subcorpus.dense_evaluation(lambda t, n=name: encode(n, t), limit_small, ("recall@2",))[0]["recall@2"]
        both = np.vstack([e1, e2])
        if name == "fp32":
            reference = {"emb": both, "sts": sts, "ndcg": ndcg, "limit": limit_r2}
        agree = np.sum(both * reference["emb"], axis=1) / (
            np.linalg.norm(both, axis=1) * np.linalg.norm(reference["emb"], axis=1))
        median_s = float(np.median(times[name]))
        speedup = stats.median_ratio(times["fp32"], times[name])
        peak = peaks.get(name)  # int8: no int8 peak is measured, so no share of it is claimed
        rows.append({
            "variant": name, "docs_per_s": args.docs / median_s, "tokens_per_s": sum(lengths) / median_s,
            "gflop_per_s": flops / median_s / 1e9, "peak_gflop_per_s": peak,
            "share_of_peak": flops / median_s / 1e9 / peak if peak else None,
            "speedup_vs_fp32": speedup.estimate, "speedup_low": speedup.low, "speedup_high": speedup.high,
            "mean_cosine_to_fp32": float(agree.mean()), "min_cosine_to_fp32": float(agree.min()),
            "stsb_spearman": sts, "stsb_change": sts - reference["sts"],
            "scifact_ndcg10": ndcg, "scifact_change": ndcg - reference["ndcg"],
            "limit_small_recall2": limit_r2, "limit_small_change": limit_r2 - reference["limit"],
        })

    header = (f"MiniLM-L6 encoding, {args.docs} SciFact abstracts ({sum(lengths)} word pieces), batch "
              f"{args.batch_size}, {torch.get_num_threads()} torch threads, {args.repeats} interleaved repeats; "
              f"CPU bf16: {'native' if has_native_bf16(flags) else 'no'}")
    print(header)
    print(f"{'variant':9s} {'docs/s':>8s} {'tok/s':>8s} {'GFLOP/s':>8s} {'of peak':>8s} {'speed-up (95% CI)':>20s} "
          f"{'cos fp32':>9s} {'STS-B Δ':>8s} {'SciFact Δ':>9s} {'LIMIT Δ':>8s}")
    for r in rows:
        ci = f"{r['speedup_vs_fp32']:.2f} [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}]"
        print(f"{r['variant']:9s} {r['docs_per_s']:8.1f} {r['tokens_per_s']:8.0f} {r['gflop_per_s']:8.1f} "
              f"{_share(r['share_of_peak']):>8s} {ci:>20s} {r['mean_cosine_to_fp32']:9.5f} {r['stsb_change']:+8.2f} "
              f"{r['scifact_change']:+9.2f} {r['limit_small_change']:+8.2f}")
    (out / "encoding.json").write_text(json.dumps({"setting": header, "peaks": peaks, "rows": rows}, indent=1))
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "encoding.csv", index=False)
    print(f"written: {out / 'encoding.json'}, {out / 'encoding.csv'}")
    # The evidence embrepro.precision's rule reads: the anchors' change under bf16, for this CPU model.
    bf16 = next((r for r in rows if r["variant"] == "bf16"), None)
    changes = {} if bf16 is None else {"STS-B": bf16["stsb_change"], "SciFact": bf16["scifact_change"],
                                       "LIMIT-small": bf16["limit_small_change"]}
    speed = {r["variant"]: round(r["docs_per_s"], 1) for r in rows}
    path = write_evidence(changes, native=has_native_bf16(flags), docs_per_s=speed, setting=header,
                          speedup_bf16=None if bf16 is None else [bf16["speedup_vs_fp32"], bf16["speedup_low"],
                                                                  bf16["speedup_high"]])
    print(f"bf16 anchors within {ANCHOR_TOLERANCE} points of fp32: "
          f"{'yes' if bf16 is not None and anchors_hold(changes) else 'no'} ({path}); this machine's default "
          f"precision is now {default_precision()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
