"""The per-batch-shape CUDA-graph step of ``sphereml.training.graph_step`` (text
models), run eagerly on the CPU against skorch's loop, and on CUDA where present."""

import pickle

import numpy as np
import pytest
import torch


# ---------------------------------------------------------------- graph steps (text)
def _texts(n=160, seed=0, longest=70):
    """Variable-length texts (3 to ``longest`` words) whose class is carried by a word."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(60)]
    y = rng.integers(0, 3, n)
    texts = []
    for label in y:
        words = list(rng.choice(vocabulary, rng.integers(3, longest)))
        words[rng.integers(len(words))] = f"topic{label}"
        texts.append(" ".join(words))
    return texts, y


_TEXT_PARAMS = dict(
    d_model=16, n_layers=1, n_heads=2, max_length=64, max_epochs=3, batch_size=16,
    random_state=0,
)  # fmt: skip


def _eager_graph_steps(estimator):
    """Run the graph-step code eagerly (its CPU form) for this estimator's fits."""
    estimator._graph_step_mode = lambda device, optimizer: "eager"
    return estimator


@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
def test_graph_step_code_equals_the_skorch_loop(architecture, monkeypatch):
    from sphereml import NGPTTextClassifier
    from sphereml.neural import _base
    from sphereml.training import graph_step as _graph_step

    # the same batch lengths on both paths (the graph path rounds them up for few shapes)
    monkeypatch.setattr(_base, "LENGTH_MULTIPLE", 1)
    X, y = _texts()
    params = dict(_TEXT_PARAMS, architecture=architecture)
    loop = NGPTTextClassifier(**params).fit(X, y)
    steps = _eager_graph_steps(NGPTTextClassifier(**params)).fit(X, y)
    assert isinstance(steps.net_.__dict__.get("_graph_steps"), _graph_step.GraphSteps)
    assert "_graph_steps" not in loop.net_.__dict__
    np.testing.assert_array_equal(steps.loss_curve_, loop.loss_curve_)
    np.testing.assert_array_equal(steps.predict_proba(X), loop.predict_proba(X))
    # the schedule reached the optimiser on both paths
    lrs = [g["lr"] for g in steps.net_.optimizer_.param_groups]
    assert lrs == [g["lr"] for g in loop.net_.optimizer_.param_groups]
    del steps._graph_step_mode  # (the test's patch; the fitted net pickles without graphs)
    loaded = pickle.loads(pickle.dumps(steps))
    assert "_graph_steps" not in loaded.net_.__dict__
    np.testing.assert_array_equal(loaded.predict_proba(X), steps.predict_proba(X))


def test_batches_are_rounded_up_to_the_length_multiple():
    from skorch.dataset import Dataset

    from sphereml.training.batching import BatchIterator

    mask = np.zeros((50, 100), dtype=bool)
    lengths = np.random.default_rng(0).integers(1, 101, 50)
    for row, length in enumerate(lengths):
        mask[row, :length] = True
    ids = np.where(mask, 7, 0)
    data = Dataset({"ids": ids, "mask": mask}, np.zeros(50, dtype=np.int64))
    iterator = BatchIterator(data, 8, trim_mask="mask", length_multiple=32)
    widths = [Xb["ids"].shape[1] for Xb, _ in iterator]
    longest = [lengths[i : i + 8].max() for i in range(0, 50, 8)]
    assert widths == [min(-(-m // 32) * 32, 100) for m in longest]
    assert all(Xb["mask"].shape == Xb["ids"].shape for Xb, _ in iterator)


@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
def test_extra_masked_padding_leaves_the_model_unchanged(architecture):
    from sphereml.nn.ngpt import NGPTEncoder, PreLNTransformer, TextEncoderConfig

    torch.manual_seed(0)
    config = TextEncoderConfig(50, 3, d_model=16, n_layers=2, n_heads=2, max_length=64)
    model = (NGPTEncoder if architecture == "ngpt" else PreLNTransformer)(config).eval()
    ids = torch.randint(1, 50, (4, 20))
    mask = torch.arange(20)[None, :] < torch.tensor([[20], [5], [13], [1]])
    ids = ids * mask
    padded_ids = torch.nn.functional.pad(ids, (0, 12))
    padded_mask = torch.nn.functional.pad(mask, (0, 12))
    with torch.no_grad():
        torch.testing.assert_close(
            model(padded_ids, padded_mask), model(ids, mask), rtol=1e-5, atol=1e-6
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graph_steps_match_eager_steps(architecture, compile):
    from sphereml import NGPTTextClassifier

    # a short last batch and, with compile=True, a second shape that makes torch compile
    # a dynamic graph (whose kernels must be tuned before their capture)
    X, y = _texts(330, longest=120)
    params = dict(_TEXT_PARAMS, architecture=architecture, device="cuda", compile=compile)
    params["max_length"] = 128
    graph = NGPTTextClassifier(**params).fit(X, y)
    steps = graph.net_.__dict__["_graph_steps"]
    assert steps.capture and not steps.failed and len(steps.graphs) >= 2
    # the captured Adam read the scheduled learning rate (set before each replay): the
    # last replayed step's lies between the schedule's base and its final value
    (used,) = [float(t) for t in steps.learning_rates]
    (final,) = [g["lr"] for g in graph.net_.optimizer_.param_groups]
    assert final * (1 - 1e-6) <= used < graph._learning_rate()
    eager = _eager_graph_steps(NGPTTextClassifier(**params)).fit(X, y)
    assert not eager.net_.__dict__["_graph_steps"].capture
    np.testing.assert_allclose(graph.loss_curve_, eager.loss_curve_, rtol=2e-2)
    np.testing.assert_allclose(graph.predict_proba(X), eager.predict_proba(X), atol=3e-2)
