"""NGPTTextClassifier, its pre-LN baseline, the nGPT modules and the tokenizer.

sklearn skips its common checks for string input, so the integration is tested here.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from property_inputs import SETTINGS, clear_error_or
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sphereml import (
    NGPTTextClassifier,
)
from sphereml.datasets import load_bbc_news
from sphereml.nn.ngpt import (
    NGPTEncoder,
    PreLNBlock,
    PreLNTransformer,
    Rotary,
    TextEncoderConfig,
    _pairs_are_complex_viewable,
)
from sphereml.riemannian import unit_norm_dim
from sphereml.text import CLS, PAD, UNK, TextTokenizer, check_texts

SMALL = dict(d_model=32, n_layers=1, n_heads=2, max_length=32, random_state=0)

TOY_X = [
    "the match ended with a late goal",
    "shares fell as the market closed",
    "the striker scored twice in the final",
    "profits rose and the bank raised its forecast",
    "a goal in extra time won the cup",
    "the central bank cut interest rates",
] * 6
TOY_Y = ["sport", "business"] * 18


@pytest.fixture(scope="module")
def bbc_split():
    news = load_bbc_news()
    return train_test_split(
        np.array(news.data, dtype=object),
        news.target,
        test_size=0.25,
        random_state=0,
        stratify=news.target,
    )


# ------------------------------------------------------------------------------ tokenizer
def test_tokenizer_ids_mask_truncation_and_oov():
    tok = TextTokenizer("word", max_length=5).fit(["b a a", "c a b"])
    assert tok.vocabulary_ == {"a": 3, "b": 4, "c": 5}  # by count, ties alphabetical
    ids, mask = tok.transform(["a zzz b", "", "a a a a a a a"])
    np.testing.assert_array_equal(ids[0], [CLS, 3, UNK, 4, PAD])
    np.testing.assert_array_equal(ids[1], [CLS, PAD, PAD, PAD, PAD])  # empty → CLS alone
    np.testing.assert_array_equal(ids[2], [CLS, 3, 3, 3, 3])  # truncated, head kept
    np.testing.assert_array_equal(mask, ids != PAD)
    assert mask[:, 0].all()  # never a fully masked row
    byte_ids, _ = TextTokenizer("byte", max_length=4).fit(["x"]).transform(["hé"])
    np.testing.assert_array_equal(byte_ids[0], [CLS, ord("h") + 3, 0xC3 + 3, 0xA9 + 3])
    restored = pickle.loads(pickle.dumps(tok))
    np.testing.assert_array_equal(restored.transform(["a zzz b"])[0], ids[:1, :4])


def test_bpe_tokenizer_round_trip_and_pickle():
    pytest.importorskip("tokenizers")
    texts = ["The bank raised rates", "the match ended", "rates and matches"] * 5
    tok = TextTokenizer("bpe", max_length=64, max_vocab=300).fit(texts)
    assert tok.vocab_size_ <= 303
    ids, mask = tok.transform(["The bank ended Ünïcode matches", ""])
    assert ids[0, 0] == CLS and ids[1, 0] == CLS and not mask[1, 1:].any()
    assert (ids[0, 1:][mask[0, 1:]] >= 3).all()  # byte-level BPE: no PAD/UNK/CLS inside
    # decoding the subwords gives back the normalised (NFKC, lower-cased) text
    decoded = tok._bpe.decode(ids[0, 1:][mask[0, 1:]].tolist())
    assert decoded.strip() == "the bank ended ünïcode matches"
    restored = pickle.loads(pickle.dumps(tok))
    np.testing.assert_array_equal(
        restored.transform(["rates fell"])[0], tok.transform(["rates fell"])[0]
    )


# ---------------------------------------------------------------------------- the modules
def test_ngpt_norms_after_every_step_and_scale_trick():
    clf = NGPTTextClassifier(max_epochs=1, batch_size=4, early_stopping=False, **SMALL)
    steps = []

    class Recorder(NGPTTextClassifier):
        def _extra_callbacks(self, n_samples):
            from skorch.callbacks import Callback

            class After(Callback):
                def on_batch_end(self, net, training=None, **kw):
                    if training:  # runs after the renormalising callback
                        steps.append(_norm_errors(net.module_))

            return [("record", After())]

    Recorder(**clf.get_params()).fit(TOY_X, TOY_Y)
    assert len(steps) == 9  # 36 texts / batch 4
    assert max(max(s) for s in steps) < 1e-5

    model = NGPTEncoder(TextEncoderConfig(50, 3, d_model=16, n_layers=2, n_heads=2, max_length=8))
    ids = torch.randint(3, 50, (4, 8))
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[1, 3:] = False
    for h in model.hidden_states(ids, mask):
        torch.testing.assert_close(h.norm(dim=-1), torch.ones(4, 8), atol=1e-5, rtol=0)
    # scale trick: stored at `scale`, effective value `init`; gradient w.r.t. the stored
    # parameter is (init/scale) × the gradient w.r.t. the effective value
    alpha = model.blocks[0].attention.alpha
    assert alpha.param.detach().allclose(torch.full((16,), 1 / 16**0.5))
    assert alpha().detach().allclose(torch.full((16,), 0.05))
    s_z = model.s_z
    assert s_z().detach().allclose(torch.full((3,), 10.0))
    out = (s_z() * torch.arange(3.0)).sum()
    out.backward()
    torch.testing.assert_close(s_z.param.grad, torch.arange(3.0) * (s_z.init / s_z.scale))


def _norm_errors(module):
    errs = [0.0]
    for p in module.parameters():
        dim = unit_norm_dim(p)
        if dim is not None:
            errs.append(float((torch.linalg.vector_norm(p.detach(), dim=dim) - 1).abs().max()))
    return errs


def test_masked_keys_do_not_change_the_output_and_no_nan():
    torch.manual_seed(0)
    model = NGPTEncoder(
        TextEncoderConfig(40, 2, d_model=16, n_layers=2, n_heads=2, max_length=10)
    ).eval()
    ids = torch.randint(3, 40, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[:, 6:] = False
    other = ids.clone()
    other[:, 6:] = torch.randint(3, 40, (2, 4))  # different tokens under the mask
    torch.testing.assert_close(model(ids, mask), model(other, mask))
    only_cls = torch.zeros(2, 10, dtype=torch.long)
    only_cls[:, 0] = CLS
    assert torch.isfinite(model(only_cls, only_cls != PAD)).all()


def test_baseline_is_pre_ln_with_final_ln_and_matching_size():
    block = PreLNBlock(TextEncoderConfig(1, 1, d_model=16, n_heads=2, mlp_ratio=4.0, max_length=8))
    x = torch.randn(3, 8, 16)
    mask = torch.ones(3, 8, dtype=torch.bool)
    expected = x + block.attention(block.ln_attention(x), mask)
    expected = expected + block.mlp(block.ln_mlp(expected))
    torch.testing.assert_close(block(x, mask), expected)
    base = PreLNTransformer(TextEncoderConfig(1000, 5, d_model=128, n_layers=4, n_heads=4))
    ngpt = NGPTEncoder(TextEncoderConfig(1000, 5, d_model=128, n_layers=4, n_heads=4))
    assert isinstance(base.ln_final, torch.nn.LayerNorm)
    n_base = sum(p.numel() for p in base.parameters())
    n_ngpt = sum(p.numel() for p in ngpt.parameters())
    assert abs(n_base - n_ngpt) / n_base < 0.01


# ------------------------------------------------------------------- learning real text
@pytest.mark.parametrize(
    "architecture, tokenizer", [("ngpt", "word"), ("transformer", "word"), ("ngpt", "bpe")]
)
def test_bbc_news_accuracy(bbc_split, architecture, tokenizer):
    if tokenizer == "bpe":
        pytest.importorskip("tokenizers")
    Xtr, Xte, ytr, yte = bbc_split
    clf = NGPTTextClassifier(
        architecture,
        tokenizer=tokenizer,
        max_vocab=8000,
        d_model=64,
        n_layers=1,
        n_heads=2,
        max_length=128,
        max_epochs=6,
        random_state=0,
    ).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.90
    assert np.isfinite(clf.loss_curve_).all()


def test_deterministic_with_random_state():
    a = NGPTTextClassifier(max_epochs=2, **SMALL).fit(TOY_X, TOY_Y)
    b = NGPTTextClassifier(max_epochs=2, **SMALL).fit(TOY_X, TOY_Y)
    np.testing.assert_array_equal(a.predict_proba(TOY_X), b.predict_proba(TOY_X))


def test_compile_matches_eager_and_pickles():
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile's CPU backend needs a C++ compiler")
    kw = dict(max_epochs=3, batch_size=8, **SMALL)
    eager = NGPTTextClassifier(**kw).fit(TOY_X, TOY_Y)
    compiled = NGPTTextClassifier(compile=True, **kw).fit(TOY_X, TOY_Y)
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(compiled.predict_proba(TOY_X), eager.predict_proba(TOY_X), atol=1e-5)
    restored = pickle.loads(pickle.dumps(compiled))
    np.testing.assert_array_equal(restored.predict_proba(TOY_X), compiled.predict_proba(TOY_X))


# -------------------------------------------------------------------- sklearn integration
def test_sklearn_integration():
    clf = NGPTTextClassifier(max_epochs=10, batch_size=8, **SMALL)
    assert clone(clf).get_params() == clf.get_params()
    clf.set_params(d_model=16)
    assert clf.d_model == 16
    clf.fit(TOY_X, TOY_Y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(TOY_X), clf.predict_proba(TOY_X))
    pipe = make_pipeline(FunctionTransformer(lambda s: [t.lower() for t in s]), clone(clf))
    assert pipe.fit(TOY_X, TOY_Y).score(TOY_X, TOY_Y) > 0.9
    search = GridSearchCV(
        NGPTTextClassifier(max_epochs=10, batch_size=8, **SMALL),
        {"d_model": [16, 32], "pooling": ["mean", "cls"]},
        cv=2,
        n_jobs=2,
    ).fit(TOY_X, TOY_Y)
    assert search.best_score_ > 0.9
    scores = cross_val_score(clone(clf), TOY_X, TOY_Y, cv=3, scoring="f1_macro")
    assert scores.mean() > 0.9
    assert clf.transform(TOY_X).shape == (36, 16)
    np.testing.assert_allclose(np.linalg.norm(clf.transform(TOY_X), axis=1), 1.0, atol=1e-12)


# ------------------------------------------------------------------------------ bad input
def test_bad_text_input():
    clf = NGPTTextClassifier(max_epochs=1, **SMALL)
    with pytest.raises(TypeError, match=r"X\[2\] is NoneType"):
        clf.fit(["a b", "c d", None], [0, 1, 0])
    with pytest.raises(TypeError, match=r"X\[1\] is int"):
        clf.fit(["a b", 5], [0, 1])
    with pytest.raises(TypeError, match="single string"):
        clf.fit("a b c", [0])
    with pytest.raises(ValueError, match="no word tokens"):
        clf.fit(["", "  ", "!!"], [0, 1, 0])
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(["a b", "c d"], [1, 1])
    with pytest.raises(ValueError, match="1-D"):
        clf.fit(np.array([["a", "b"], ["c", "d"]]), [0, 1])
    fitted = clf.fit(TOY_X, TOY_Y)
    long_text = "goal " * 10_000
    proba = fitted.predict_proba(["", long_text, "unseen words only"])
    assert np.isfinite(proba).all()


def test_batches_are_padded_to_their_longest_text_only():
    from sphereml.training.batching import BatchIterator

    texts = ["a", "b c d e f g h", "i j", "k l m"] * 8 + ["n " * 40]
    y = [0, 1, 0, 1] * 8 + [1]
    clf = NGPTTextClassifier(d_model=8, n_layers=1, n_heads=2, max_length=64, max_epochs=2,
                             batch_size=4, random_state=0).fit(texts, y)  # fmt: skip
    inputs = clf._module_inputs(np.array(texts, dtype=object), fitting=False)
    # the arrays end at the longest text (40 words + CLS), not at max_length
    assert inputs["ids"].shape[1] == 41
    dataset = type("D", (), {"X": inputs, "y": np.array(y)})()
    lengths = inputs["mask"].sum(axis=1)
    for shuffle in (False, True):
        iterator = BatchIterator(dataset, 4, shuffle=shuffle, seed=0, trim_mask="mask")
        for batch, _ in iterator:
            mask = batch["mask"].numpy()
            assert batch["ids"].shape == mask.shape
            assert mask.shape[1] == mask.sum(axis=1).max()  # the batch's longest text
            assert mask[:, -1].any()
    assert sorted(lengths) == sorted(
        int(n) for b, _ in BatchIterator(dataset, 4, trim_mask="mask") for n in b["mask"].sum(1)
    )
    # trimming changes nothing: the module on the full-width arrays gives the same logits
    ids, mask = clf.tokenizer_.transform(texts)
    with torch.no_grad():
        full = clf.net_.module_.eval()(ids=torch.as_tensor(ids), mask=torch.as_tensor(mask))
    proba = torch.softmax(full.double(), dim=1).numpy()
    np.testing.assert_allclose(clf.predict_proba(texts), proba, atol=1e-5)


def test_length_buckets_pad_less_and_keep_a_shuffled_permutation():
    from sphereml.training.batching import BUCKET_BATCHES, BatchIterator

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=203)
    mask = np.arange(60)[None, :] < lengths[:, None]
    dataset = type("D", (), {"X": {"ids": mask.astype(np.int64), "mask": mask},
                             "y": np.arange(203)})()  # fmt: skip

    def epoch(bucket_batches, seed=0):
        iterator = BatchIterator(
            dataset, 8, shuffle=True, seed=seed, trim_mask="mask", bucket_batches=bucket_batches
        )
        return [(b["mask"].shape[1], y.numpy()) for b, y in iterator]

    plain, bucketed = epoch(1), epoch(4)
    # a permutation of the samples, the short last batch last, every batch cut to its
    # longest text
    rows = np.concatenate([y for _, y in bucketed])
    assert sorted(rows) == list(range(203)) and len(bucketed[-1][1]) == 203 % 8
    assert all(width == lengths[y].max() for width, y in bucketed)

    # runs of 4 batches are sorted by length: far fewer padded tokens than plain shuffling
    def padded(batches):
        return sum(width * len(y) for width, y in batches)

    assert padded(bucketed) < 0.8 * padded(plain)
    # batch order shuffled (not long-to-short within each run), new batches each epoch
    assert [w for w, _ in bucketed[:-1]] != sorted((w for w, _ in bucketed[:-1]), reverse=True)
    other = epoch(4, seed=1)
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(bucketed, other, strict=True))
    # the estimator's training iterator groups by length; its validation one does not
    clf = NGPTTextClassifier(max_epochs=1, **SMALL).fit(TOY_X, TOY_Y)
    assert clf.net_.iterator_train__bucket_batches == BUCKET_BATCHES > 1
    assert not hasattr(clf.net_, "iterator_valid__bucket_batches")


def test_swiglu_scalings_folded_into_the_weights_match_the_paper_form():
    from sphereml.nn.layers import NormalizedSwiGLU

    torch.manual_seed(0)
    mlp = NormalizedSwiGLU(8, 16).double()
    with torch.no_grad():
        mlp.s_u.param.uniform_(0.5, 2.0)
        mlp.s_v.param.uniform_(0.5, 2.0)
    h = torch.randn(3, 5, 8, dtype=torch.float64)
    # the paper's form: u = s_u ⊙ W_u h, v = s_v ⊙ W_v h · √d, W_o (u ⊙ silu(v))
    u = (h @ mlp.W_u.weight.T) * mlp.s_u()
    v = (h @ mlp.W_v.weight.T) * mlp.s_v() * 8**0.5
    reference = (u * torch.nn.functional.silu(v)) @ mlp.W_o.weight.T
    torch.testing.assert_close(mlp(h), reference, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(mlp(h).sum(), [mlp.s_u.param, mlp.s_v.param])
    expected = torch.autograd.grad(reference.sum(), [mlp.s_u.param, mlp.s_v.param])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_learning_rate_schedules():
    from sphereml.neural.ngpt_text_classifier import WarmupCosine

    ngpt = WarmupCosine(0, 100, 0.1)
    assert ngpt(0) == 1.0 and ngpt(50) == pytest.approx(0.55) and ngpt(100) == pytest.approx(0.1)
    baseline = WarmupCosine(10, 100)
    assert baseline(0) == pytest.approx(0.1) and baseline(9) == 1.0 and baseline(100) == 0.0
    # the fitted nets step their optimiser's lr along those multipliers, batch by batch
    for architecture, final in (("ngpt", 0.1), ("transformer", 0.0)):
        clf = NGPTTextClassifier(
            architecture, max_epochs=3, batch_size=4, early_stopping=False, lr=0.01, **SMALL
        ).fit(TOY_X, TOY_Y)
        lr = clf.net_.optimizer_.param_groups[0]["lr"]
        assert lr == pytest.approx(0.01 * final, abs=1e-6)


def test_schedule_horizon_does_not_stretch_with_max_epochs():
    # decay_epochs fixes the schedule in epochs: the lr reaches its final value after
    # min(decay_epochs, max_epochs) epochs and stays there
    from sphereml.neural.ngpt_text_classifier import _NGPT_FINAL_LR_FRACTION

    def lr_per_epoch(**params):
        clf = NGPTTextClassifier(
            max_epochs=4, batch_size=12, lr=0.01, early_stopping=False, **SMALL, **params
        )
        clf.fit(TOY_X, TOY_Y)
        return [epoch["batches"][-1]["event_lr"] for epoch in clf.history_]

    final = 0.01 * _NGPT_FINAL_LR_FRACTION
    fixed = lr_per_epoch(decay_epochs=2)
    assert fixed[0] > 1.5 * final and fixed[2:] == pytest.approx([final] * 2)
    stretched = lr_per_epoch(decay_epochs=None)
    assert stretched[2] > 1.5 * final
    with pytest.raises(ValueError, match="decay_epochs"):
        NGPTTextClassifier(decay_epochs=0, **SMALL).fit(TOY_X, TOY_Y)


@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
def test_more_epochs_leave_an_early_stopped_fit_unchanged(architecture):
    # a fit that early stopping ends before max_epochs returns the same model when
    # max_epochs doubles: the steps before the stop do not depend on max_epochs
    texts, labels = TOY_X * 3, TOY_Y * 3
    fits = [
        NGPTTextClassifier(
            architecture,
            max_epochs=epochs,
            decay_epochs=3,
            n_iter_no_change=1,
            tol=10.0,
            **SMALL,
        ).fit(texts, labels)
        for epochs in (8, 16)
    ]
    assert fits[0].n_iter_ == fits[1].n_iter_ < 8
    np.testing.assert_array_equal(fits[0].predict_proba(texts), fits[1].predict_proba(texts))
    # with the schedule stretched to max_epochs the same two fits differ
    stretched = [
        NGPTTextClassifier(
            architecture,
            max_epochs=epochs,
            decay_epochs=None,
            n_iter_no_change=1,
            tol=10.0,
            **SMALL,
        ).fit(texts, labels)
        for epochs in (8, 16)
    ]
    assert not np.array_equal(stretched[0].predict_proba(texts), stretched[1].predict_proba(texts))


def test_auto_learning_rate_and_batch_size_per_architecture():
    # lr="auto" and batch_size="auto" (the defaults): 0.008 and 64 for nGPT, 0.002 and 32
    # for the baseline; numbers win
    from sphereml.neural.ngpt_text_classifier import _NGPT_FINAL_LR_FRACTION

    assert NGPTTextClassifier().lr == NGPTTextClassifier().batch_size == "auto"
    texts, labels = TOY_X * 3, TOY_Y * 3  # 108 texts: a batch of 64 is not capped
    expected = {
        ("ngpt", "auto", "auto"): (0.008, 64),
        ("transformer", "auto", "auto"): (0.002, 32),
        ("ngpt", 0.05, 16): (0.05, 16),
    }
    for (architecture, lr, batch_size), (base, size) in expected.items():
        clf = NGPTTextClassifier(
            architecture, lr=lr, batch_size=batch_size, max_epochs=2, early_stopping=False, **SMALL
        ).fit(texts, labels)
        assert clf.net_.lr == base
        assert clf.net_.batch_size == size
        assert clf.history_[-1]["batches"][0]["train_batch_size"] == size
        final = _NGPT_FINAL_LR_FRACTION if architecture == "ngpt" else 0.0
        last = clf.net_.optimizer_.param_groups[0]["lr"]
        assert last == pytest.approx(base * final, abs=1e-9)
    with pytest.raises(ValueError, match="lr"):
        NGPTTextClassifier(lr="fast", **SMALL).fit(TOY_X, TOY_Y)
    with pytest.raises(ValueError, match="batch_size"):
        NGPTTextClassifier(batch_size="large", **SMALL).fit(TOY_X, TOY_Y)


def test_tokenizer_refuses_impossible_settings():
    for kwargs in ({"max_vocab": 0}, {"max_vocab": -1}, {"min_count": 0}, {"max_length": 1}):
        with pytest.raises(ValueError, match="must be an integer"):
            TextTokenizer(**kwargs)
    with pytest.raises(ValueError, match="removes every word"):
        TextTokenizer(min_count=5).fit(["a b", "c"])
    with pytest.raises(NotFittedError):
        TextTokenizer().transform(["a"])
    for container in ({"a": 1, "b": 2}, {"a", "b"}):
        with pytest.raises(TypeError, match="ordered sequence"):
            check_texts(container)


@pytest.mark.parametrize("kind", ["word", "byte", "bpe"])
def test_lone_surrogates_are_tokenised(kind):
    if kind == "bpe":
        pytest.importorskip("tokenizers")
    tokenizer = TextTokenizer(kind, max_length=8).fit(["hello world", "bad \ud800 text"])
    ids, mask = tokenizer.transform(["x \udc80 y", "\ud800"])
    assert ids.shape[0] == 2 and ids.shape[1] <= 8 and mask[:, 0].all()


def test_transformer_baseline_pickles():
    texts = ["good movie", "bad movie", "great film", "awful film"] * 5
    y = [1, 0, 1, 0] * 5
    clf = NGPTTextClassifier(
        "transformer", d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=2,
        random_state=0,
    ).fit(texts, y)  # fmt: skip
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))


def test_impossible_text_model_sizes_are_refused_by_name():
    texts = np.array(["good film", "bad film", "fine movie", "awful movie"] * 5, dtype=object)
    labels = [1, 0, 1, 0] * 5
    with pytest.raises(ValueError, match="d_model=1000000"):
        NGPTTextClassifier(d_model=10**6, n_heads=2, max_epochs=1).fit(texts, labels)
    with pytest.raises(ValueError, match="max_length=1000000000"):
        NGPTTextClassifier(d_model=8, n_heads=2, max_length=10**9, max_epochs=1).fit(texts, labels)


def test_the_tokenizer_allocates_no_more_than_the_longest_text():
    tokenizer = TextTokenizer("word", max_length=2_000_000).fit(["a b c", "a"])
    ids, mask = tokenizer.transform(["a b c"] * 300)
    assert ids.shape == (300, 4) and mask.all()
    with pytest.raises(TypeError, match="lowercase"):
        TextTokenizer(lowercase="no")


@SETTINGS
@given(
    texts=st.lists(st.text(max_size=30), min_size=0, max_size=6),
    kind=st.sampled_from(["word", "byte"]),
    max_length=st.integers(-1, 12),
)
def test_tokenizer_on_any_input(texts, kind, max_length):
    def valid(result):
        ids, mask = result
        assert ids.shape[0] == len(texts) and 1 <= ids.shape[1] <= max_length
        assert (ids >= 0).all() and mask[:, 0].all()
        assert mask[:, -1].any()  # no column of padding only: the longest text ends there

    clear_error_or(
        valid, lambda: TextTokenizer(kind, max_length=max_length).fit(texts).transform(texts)
    )


@settings(deadline=None, max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.one_of(st.text(max_size=20), st.none(), st.integers()), max_size=8),
    y=st.lists(st.sampled_from([0, 1, "a"]), max_size=8),
    tokenizer=st.sampled_from(["word", "byte"]),
)
def test_text_classifier_on_any_input(texts, y, tokenizer):
    from sphereml import NGPTTextClassifier

    def valid(model):
        proba = model.predict_proba(texts)
        assert np.all(np.isfinite(proba))
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)

    clf = NGPTTextClassifier(d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=1,
                             tokenizer=tokenizer, random_state=0)  # fmt: skip
    clear_error_or(valid, lambda: clf.fit(texts, y))


def _rotated_reference(x: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Each pair (x₂ⱼ, x₂ⱼ₊₁) at position p rotated by p · base^(−2j/d), in float64."""
    length, dim = x.shape[-2:]
    angles = torch.arange(length, dtype=torch.float64)[:, None] * base ** (
        -torch.arange(0, dim, 2, dtype=torch.float64) / dim
    )
    a, b = x.double()[..., 0::2], x.double()[..., 1::2]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)


@pytest.mark.parametrize("layout", ["heads-view", "contiguous", "odd-offset"])
def test_rotary_rotates_each_pair_by_its_position_angle(layout):
    # the heads view and a contiguous tensor take the complex-multiply form, a tensor at
    # an odd storage offset the strided one; both agree with explicit rotations
    rotary = Rotary(head_dim=16, max_length=48)
    torch.manual_seed(0)
    source = torch.randn(3, 40, 4 * 16 + 1, requires_grad=True)
    if layout == "heads-view":  # as attention makes it from (batch, length, d_model)
        x = (source[..., 1:] * 1.0).unflatten(-1, (4, 16)).transpose(1, 2)
    elif layout == "contiguous":
        x = source[..., 1:].reshape(3, 40, 4, 16).transpose(1, 2).contiguous()
    else:
        x = source[..., 1:].unflatten(-1, (4, 16)).transpose(1, 2)
    assert _pairs_are_complex_viewable(x) == (layout != "odd-offset")
    out = rotary(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out.double(), _rotated_reference(x), rtol=0, atol=2e-6)
    # a rotation is orthogonal: the gradient of ⟨out, w⟩ is w rotated back
    w = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    back = _rotated_reference(grad)  # R(θ) Rᵀ(θ) w = w
    torch.testing.assert_close(back, w.double(), rtol=0, atol=2e-5)
