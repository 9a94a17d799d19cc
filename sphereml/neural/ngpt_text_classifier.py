"""NGPTTextClassifier: the normalised Transformer (nGPT) on raw text, and its baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from skorch.callbacks import LRScheduler

from ..nn.ngpt import NGPTEncoder, PreLNTransformer, TextEncoderConfig
from ..text import TextTokenizer, check_texts
from ..utils._sklearn_compat import Interval, StrOptions
from ._base import TorchClassifierBase
from ._docs import fill_shared_doc, store_init_arguments


@dataclass(frozen=True)
class WarmupCosine:
    """LR multiplier: linear warm-up over ``warmup_steps``, then cosine decay to
    ``final_fraction`` at ``total_steps``. A module-level class, so a net that holds it
    pickles."""

    warmup_steps: int
    total_steps: int
    final_fraction: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return self.final_fraction + (1.0 - self.final_fraction) * cosine


def warmup_cosine(warmup_steps: int, total_steps: int, final_fraction: float = 0.0) -> WarmupCosine:
    """LR multiplier: linear warm-up, then cosine decay to ``final_fraction``."""
    return WarmupCosine(warmup_steps, total_steps, final_fraction)


# lr="auto" and batch_size="auto": nGPT takes larger steps on larger batches than the
# pre-LN baseline, whose accuracy drops with either
_AUTO_LR = {"ngpt": 0.008, "transformer": 0.002}
_AUTO_BATCH_SIZE = {"ngpt": 64, "transformer": 32}

# nGPT's schedule: no warm-up (the unit norms keep the first steps bounded), cosine
# decay to this fraction of lr, as in the reference training code
_NGPT_FINAL_LR_FRACTION = 0.1


@fill_shared_doc
class NGPTTextClassifier(TorchClassifierBase):
    """Text classifier built on the normalised Transformer (nGPT, arXiv:2410.01131).

    ``fit(X, y)`` takes raw strings: a tokenizer is fitted on them (word vocabulary or
    UTF-8 bytes, no downloads; see :mod:`sphereml.text`), a non-causal nGPT encoder reads
    the ids with a key-padding mask, the pooled state ``Norm(masked mean)`` (or the CLS
    state) is scored by a cosine head with per-class scale ``s_z``. Every embedding row,
    weight vector of the model space and hidden state has unit norm; the weights are
    renormalised after every optimiser step. Training uses Adam without weight decay or
    warm-up, as in the paper, with the learning rate decayed along a cosine to 0.1·lr
    over the first ``min(decay_epochs, max_epochs)`` epochs.

    ``architecture="transformer"`` trains the standard pre-LayerNorm Transformer of the
    same width, depth, heads, rotary positions and SwiGLU MLP (parameter counts within
    1 %) with AdamW, ``weight_decay`` and a linear warm-up + cosine schedule: the baseline
    the nGPT claims are measured against.

    On CUDA every training step is a CUDA graph: batch lengths are rounded up to a
    multiple of 32 (the padding is masked), the first batch of each shape runs eagerly,
    the next is captured and later ones replay it, with the fused Triton kernels of the
    nGPT block inside. Results
    agree with eager training within float tolerance; a step that cannot be captured
    falls back to eager training with a ``RuntimeWarning``.

    Parameters
    ----------
    architecture : {"ngpt", "transformer"}, default="ngpt"
    d_model : int, default=64
    n_layers : int, default=1
    n_heads : int, default=4
    mlp_ratio : float, default=2.0
        SwiGLU hidden width as a multiple of ``d_model``. The papers use 4; 2 trains
        faster on a CPU for a fraction of a point.
    max_length : int, default=256
        Tokens per text including the leading CLS token; longer texts are truncated
        (the head is kept), shorter ones padded and masked.
    tokenizer : {"word", "byte", "bpe"}, default="word"
        ``"bpe"`` trains a byte-level BPE on the training texts and needs the optional
        ``tokenizers`` package (the ``bpe`` extra).
    max_vocab : int, default=50000
        Word or BPE vocabulary size; rarer words map to UNK. The default keeps nearly
        every word of a few thousand news articles: rare words carry topic signal.
    pooling : {"mean", "cls"}, default="mean"
    logit_scale_init : float, default=10.0
        Initial s_z of the nGPT head (see :class:`sphereml.nn.ngpt.NGPTEncoder`).
    weight_decay : float, default=0.1
        AdamW weight decay of the ``"transformer"`` baseline (nGPT uses none).
    warmup_fraction : float, default=0.1
        Fraction of the scheduled steps spent in linear warm-up for the baseline.
    decay_epochs : int or None, default=10
        Epochs over which the learning rate follows its schedule (cosine decay to
        0.1·lr for nGPT, warm-up then cosine decay to 0 for the baseline), capped by
        ``max_epochs``; later epochs keep the final rate. The horizon does not stretch
        with ``max_epochs``, so raising ``max_epochs`` only appends epochs after it, and
        a fit that early stopping ended within ``max_epochs`` returns the same model.
        None: the schedule spans ``max_epochs``.
    compile : bool, default=False
        Train through ``torch.compile`` of the model (fuses the many small normalisation
        and scaling kernels of nGPT; the first epoch pays the compilation, a few graphs
        since batch lengths vary, and later fits in the same process with the same
        sizes reuse them). Prediction and pickles use the plain module; results agree
        with ``compile=False`` within float tolerance. On a CPU and for small models the
        compilation costs more than it saves; on CUDA, where steps are already CUDA
        graphs, it pays off only for long fits.
    [shared training parameters]

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    tokenizer_ : sphereml.text.TextTokenizer
    n_iter_, loss_curve_, validation_loss_curve_, history_, net_
        As in :class:`sphereml.SphericalClassifier`.

    Notes
    -----
    Empty or whitespace-only strings are valid and become ``[CLS]`` alone (no row is
    ever fully masked, so the attention softmax never sees only masked keys); a training
    set with no word token at all raises a ValueError. ``None`` and non-string items raise
    a TypeError naming their index. On CUDA the forward pass runs under bf16 autocast;
    norms are accumulated in float32.
    """

    _LR_AUTO_DOC = """ ``"auto"``: 0.008 for nGPT, 0.002 for the
        ``"transformer"`` baseline (the unit-norm model takes larger steps)."""
    _BATCH_SIZE_AUTO_DOC = """
        ``"auto"``: 64 for nGPT, 32 for the ``"transformer"`` baseline (chosen with
        ``lr``)."""

    _SIZE_PARAMETERS = ("d_model", "n_layers", "mlp_ratio", "max_vocab", "max_length")

    _parameter_constraints: dict = {
        **TorchClassifierBase._parameter_constraints,
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "architecture": [StrOptions({"ngpt", "transformer"})],
        "d_model": [Interval(Integral, 2, None, closed="left")],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "mlp_ratio": [Interval(Real, 0, None, closed="neither")],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "tokenizer": [StrOptions({"word", "byte", "bpe"})],
        "max_vocab": [Interval(Integral, 1, None, closed="left")],
        "pooling": [StrOptions({"mean", "cls"})],
        "logit_scale_init": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
        "decay_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "compile": ["boolean"],
    }

    def __init__(
        self,
        architecture="ngpt",
        *,
        d_model=64,
        n_layers=1,
        n_heads=4,
        mlp_ratio=2.0,
        max_length=256,
        tokenizer="word",
        max_vocab=50_000,
        pooling="mean",
        logit_scale_init=10.0,
        weight_decay=0.1,
        warmup_fraction=0.1,
        decay_epochs=10,
        compile=False,
        lr="auto",
        max_epochs=10,
        batch_size="auto",
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=2,
        tol=1e-3,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        accelerator=None,
    ):
        store_init_arguments(self, locals())

    _padding_mask = "mask"
    # on CUDA, training steps are CUDA graphs, one per (batch size, bucketed length)
    _graph_steps = True

    def _validate_X(self, X, *, reset: bool):
        return check_texts(X)

    def _module_inputs(self, X, *, fitting: bool, training: bool = False) -> dict[str, np.ndarray]:
        if fitting:
            self.tokenizer_ = TextTokenizer(
                self.tokenizer, max_length=self.max_length, max_vocab=self.max_vocab
            ).fit(X)
        ids, mask = self.tokenizer_.transform(X)
        # ``max_length`` is a cap: the arrays end at the longest text, and each batch is
        # cut to its own longest text (``_padding_mask``)
        width = max(int(mask.sum(axis=1).max(initial=1)), 1)
        return {"ids": ids[:, :width], "mask": mask[:, :width]}

    def _build_module(self, n_classes: int, members: list | None = None) -> torch.nn.Module:
        if members is not None:
            raise ValueError("NGPTTextClassifier has no ensemble of networks")
        config = self._module_config(
            TextEncoderConfig, vocab_size=self.tokenizer_.vocab_size_, n_classes=n_classes
        )
        return (NGPTEncoder if self.architecture == "ngpt" else PreLNTransformer)(config)

    def _learning_rate(self) -> float:
        return _AUTO_LR[self.architecture] if self.lr == "auto" else float(self.lr)

    def _batch_size(self) -> int:
        if self.batch_size == "auto":
            return _AUTO_BATCH_SIZE[self.architecture]
        return int(self.batch_size)

    def _inference_batch_size(self) -> int:
        # attention holds (rows, heads, tokens, tokens) scores: the training batch's rows
        return self._batch_size()

    def _optimizer(self) -> tuple[type, dict]:
        if self.architecture == "ngpt":
            return torch.optim.Adam, {"betas": (0.9, 0.95)}
        return torch.optim.AdamW, {"betas": (0.9, 0.95), "weight_decay": self.weight_decay}

    def _net_options(self) -> dict:
        # Batches are cut to their longest text, so shapes vary: torch's automatic dynamic
        # shapes (dynamic=None) compile the first shape statically and then one dynamic
        # graph, where dynamic=False compiled a graph per length until the recompile limit
        # (640 BBC sentences, 3 epochs, 2 cores: 5 graphs / 64 s against 9 / 152 s).
        # "reduce-overhead" would add CUDA graphs, which need static shapes.
        return {"compile": self.compile}

    def _extra_callbacks(self, n_samples: int) -> list:
        # the schedule's horizon is fixed in epochs, not stretched to max_epochs: more
        # epochs then never change the steps taken before them
        epochs = self.max_epochs
        if self.decay_epochs is not None:
            epochs = min(epochs, self.decay_epochs)
        total = epochs * math.ceil(n_samples / min(self._batch_size(), n_samples))
        if self.architecture == "ngpt":
            multiplier = warmup_cosine(0, total, _NGPT_FINAL_LR_FRACTION)
        else:
            multiplier = warmup_cosine(max(1, round(self.warmup_fraction * total)), total)
        schedule = LRScheduler(
            policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=multiplier, step_every="batch"
        )
        return [("lr_schedule", schedule)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
