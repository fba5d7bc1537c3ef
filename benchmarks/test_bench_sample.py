"""Sampling: fastsoftmax.sample against Hugging Face's chain, NumPy's recipe and one softmax.

One group per shape (float32, T = 0.7, top_k = 50, top_p = 0.9, the decoding workloads):
fastsoftmax.sample; Hugging Face's warpers + torch.multinomial (or the same steps in torch when
transformers is absent, fastsoftmax._peers); NumPy's argpartition recipe; and one
fastsoftmax.softmax(out=) of the same logits, the yardstick of the sampler's cost.  A greedy group
per shape times sample(temperature=0) against np.argmax and torch.argmax.  Every sampled token is
checked to lie in the set fastsoftmax.reference.sample_kept says the filters keep.
"""

from functools import partial

import numpy as np
import pytest

from test_bench_ops import SEED, _import_or_skip

SHAPES = {"inference_row": (1, 128256), "short_vocab": (1, 32000), "inference_batch": (32, 50257)}
CHAIN = dict(temperature=0.7, top_k=50, top_p=0.9)


def _logits(rows, classes):
    return np.random.default_rng(SEED).standard_normal((rows, classes), dtype="float32") * 3


def _info(benchmark, implementation, op, workload, x):
    benchmark.extra_info.update(implementation=implementation, op=op, workload=workload,
                                shape=list(x.shape), dtype="float32", bytes_read=x.nbytes,
                                bytes_written=x.shape[0] * 8)


@pytest.mark.parametrize("implementation", ["fastsoftmax", "hugging_face", "numpy", "softmax_out"])
@pytest.mark.parametrize("workload", list(SHAPES))
def test_sample(benchmark, measure, workload, implementation):
    fs = _import_or_skip("fastsoftmax")
    x = _logits(*SHAPES[workload])
    u = np.random.default_rng(SEED).random(x.shape[0])
    benchmark.group = f"sample {x.shape[0]}x{x.shape[1]} float32"
    name = implementation
    if implementation == "fastsoftmax":
        call = partial(fs.sample, x, u=u, **CHAIN)
    elif implementation == "hugging_face":
        torch = _import_or_skip("torch")
        from fastsoftmax._peers import hugging_face_chain
        name, chain = hugging_face_chain(**CHAIN)
        call = partial(chain, torch.from_numpy(x))
    elif implementation == "numpy":
        from fastsoftmax._peers import numpy_chain
        call = partial(numpy_chain, x, u, **CHAIN)
    else:
        name = "one softmax(out=)"
        out = np.empty_like(x)
        call = partial(fs.softmax, x, out=out)
    _info(benchmark, name, "sample", workload, x)
    if implementation == "softmax_out":
        measure(call)  # (a yardstick: one softmax, not a sampler)
        return
    reference = _import_or_skip("fastsoftmax.reference")

    def check(result):  # tokens the chain keeps (ours: the oracle's), before any timing
        tokens = np.asarray(result.tokens if implementation == "fastsoftmax"
                            else result).reshape(-1)
        kept = reference.sample_kept(x, **CHAIN)
        assert kept[np.arange(x.shape[0]), tokens].all()
        if implementation == "fastsoftmax":
            np.testing.assert_array_equal(tokens, reference.sample(x, u=u, **CHAIN).tokens)

    measure(call, check=check)


@pytest.mark.parametrize("implementation", ["fastsoftmax", "numpy", "torch"])
@pytest.mark.parametrize("workload", list(SHAPES))
def test_greedy(benchmark, measure, workload, implementation):
    x = _logits(*SHAPES[workload])
    benchmark.group = f"greedy {x.shape[0]}x{x.shape[1]} float32"
    if implementation == "fastsoftmax":
        fs = _import_or_skip("fastsoftmax")
        call = partial(fs.sample, x, temperature=0)
    elif implementation == "torch":
        torch = _import_or_skip("torch")
        call = partial(torch.argmax, torch.from_numpy(x), dim=-1)
    else:
        call = partial(np.argmax, x, axis=-1)
    _info(benchmark, implementation, "greedy", workload, x)
    measure(call, check=lambda result: np.testing.assert_array_equal(
        np.asarray(getattr(result, "tokens", result)), np.argmax(x, axis=-1)))
