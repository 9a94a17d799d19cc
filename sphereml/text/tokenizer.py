"""Tokenisation of raw text for the text estimators (no downloads, no extra packages).

:class:`TextTokenizer` turns strings into fixed-length id arrays plus a padding mask:

- ``"word"``: scikit-learn's word analyzer (lower-casing, words of word characters), a vocabulary
  of the ``max_vocab`` most frequent tokens seen in ``fit`` (ties broken alphabetically);
  out-of-vocabulary tokens map to ``UNK``.
- ``"byte"``: the UTF-8 bytes (256 ids); nothing to fit and nothing out of vocabulary.
- ``"bpe"``: byte-level BPE subwords trained in ``fit`` on the training texts with the
  optional ``tokenizers`` package (the ``bpe`` extra); ``max_vocab`` merges
  and byte symbols, NFKC + lower-casing, never out of vocabulary.

Every sequence starts with a ``CLS`` token, so no row is ever fully masked: an empty or
whitespace-only string becomes ``[CLS]`` alone (the model then sees no evidence and
predicts from its biases), and attention softmaxes always have one valid key. Texts
longer than ``max_length − 1`` tokens are truncated (the head is kept).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from numbers import Integral

import numpy as np
from sklearn.exceptions import NotFittedError

PAD, UNK, CLS = 0, 1, 2
_N_SPECIAL = 3
# words of one or more word characters (sklearn's default drops 1-letter words)
_TOKEN_PATTERN = r"(?u)\b\w+\b"
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_texts(X, *, name: str = "X") -> list[str]:
    """A list of str from a list / array / pandas Series; clear errors otherwise.

    Unordered containers (sets, dicts) are refused: their order would not match ``y``.
    Code points that are not valid Unicode text (lone UTF-16 surrogates, e.g. from
    decoding with ``errors="surrogateescape"``) are replaced by U+FFFD, so every string
    can be tokenised.
    """
    if isinstance(X, str | bytes):
        raise TypeError(f"{name} must be a sequence of strings, got a single string")
    if isinstance(X, Mapping | AbstractSet):
        raise TypeError(
            f"{name} must be an ordered sequence of strings (list, array, Series), got "
            f"{type(X).__name__}, whose order is not defined"
        )
    if hasattr(X, "ndim") and X.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one string per sample), got shape {X.shape}")
    try:
        texts = list(X)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of strings, got {type(X).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(
                f"{name}[{i}] is {type(t).__name__} ({t!r:.40}), not str; text estimators "
                "take one string per sample (convert or drop missing values first)"
            )
    if not texts:
        raise ValueError(f"{name} is empty: at least one string is required")
    return [t if t.isascii() else _SURROGATE.sub("\ufffd", t) for t in texts]


class TextTokenizer:
    """Strings → (ids, mask) arrays of shape (n_samples, at most max_length).

    Parameters
    ----------
    kind : {"word", "byte", "bpe"}, default="word"
    max_length : int, default=256
        Sequence length including the leading ``CLS`` token.
    max_vocab : int, default=20000
        Word or BPE vocabulary size (the special tokens excluded); ignored for bytes.
    min_count : int, default=1
        Words seen fewer times in ``fit`` are out of vocabulary.
    lowercase : bool, default=True
    """

    def __init__(
        self,
        kind: str = "word",
        max_length: int = 256,
        max_vocab: int = 20_000,
        min_count: int = 1,
        lowercase: bool = True,
    ) -> None:
        if kind not in ("word", "byte", "bpe"):
            raise ValueError(f"kind must be 'word', 'byte' or 'bpe', got {kind!r}")
        for name, value, low in (
            ("max_length", max_length, 2),
            ("max_vocab", max_vocab, 1),
            ("min_count", min_count, 1),
        ):
            if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(lowercase, (bool, np.bool_)):
            raise TypeError(f"lowercase must be True or False, got {lowercase!r}")
        self.kind = kind
        self.max_length = int(max_length)
        self.max_vocab = int(max_vocab)
        self.min_count = int(min_count)
        self.lowercase = bool(lowercase)

    def _tokens(self, text: str) -> list[str]:
        return self._analyzer(text)

    def fit(self, texts: Iterable[str]) -> TextTokenizer:
        texts = check_texts(texts)
        if self.kind == "byte":
            self.vocab_size_ = 256 + _N_SPECIAL
            return self
        if self.kind == "bpe":
            self._bpe = _train_bpe(texts, self.max_vocab + _N_SPECIAL, self.lowercase)
            self.vocab_size_ = self._bpe.get_vocab_size()
            return self
        from sklearn.feature_extraction.text import CountVectorizer

        self._analyzer = CountVectorizer(
            lowercase=self.lowercase, token_pattern=_TOKEN_PATTERN
        ).build_analyzer()
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self._tokens(text))
        if not counts:
            raise ValueError(
                "no word tokens in any of the training texts (all empty or without "
                "letters/digits); use kind='byte' for such input"
            )
        kept = sorted(
            (w for w, c in counts.items() if c >= self.min_count), key=lambda w: (-counts[w], w)
        )[: self.max_vocab]
        if not kept:
            raise ValueError(
                f"min_count={self.min_count} removes every word: the most frequent word "
                f"occurs {max(counts.values())} time(s) in the training texts"
            )
        self.vocabulary_ = {w: i + _N_SPECIAL for i, w in enumerate(kept)}
        self.vocab_size_ = len(self.vocabulary_) + _N_SPECIAL
        return self

    def transform(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``ids`` (int64) and ``mask`` (bool, True at real tokens), both (n, L).

        ``L = min(max_length, 1 + the most tokens of any text)``: ``max_length`` caps the
        width, and no more is allocated than the longest text needs.
        """
        if not hasattr(self, "vocab_size_"):
            raise NotFittedError("this TextTokenizer is not fitted yet; call fit(texts) first")
        texts = check_texts(texts)
        cap = self.max_length - 1
        if self.kind == "bpe":
            encoded = self._bpe.encode_batch(texts, add_special_tokens=False)
            sequences = [np.asarray(e.ids[:cap], dtype=np.int64) for e in encoded]
        elif self.kind == "byte":
            sequences = [
                np.frombuffer(text.encode("utf-8")[:cap], dtype=np.uint8).astype(np.int64)
                + _N_SPECIAL
                for text in texts
            ]
        else:
            vocab = self.vocabulary_
            sequences = [
                np.asarray([vocab.get(t, UNK) for t in self._tokens(text)[:cap]], dtype=np.int64)
                for text in texts
            ]
        length = 1 + max(len(seq) for seq in sequences)
        ids = np.full((len(texts), length), PAD, dtype=np.int64)
        ids[:, 0] = CLS
        for row, seq in enumerate(sequences):
            ids[row, 1 : 1 + len(seq)] = seq
        return ids, ids != PAD

    def __getstate__(self):
        # the analyzer is a closure (rebuilt after unpickling); the BPE model is stored
        # as its JSON, the format ``tokenizers`` keeps stable across versions
        state = dict(self.__dict__)
        state.pop("_analyzer", None)
        if "_bpe" in state:
            state["_bpe"] = state["_bpe"].to_str()
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if isinstance(state.get("_bpe"), str):
            from tokenizers import Tokenizer

            self._bpe = Tokenizer.from_str(state["_bpe"])
        if self.kind == "word" and "vocabulary_" in state:
            from sklearn.feature_extraction.text import CountVectorizer

            self._analyzer = CountVectorizer(
                lowercase=self.lowercase, token_pattern=_TOKEN_PATTERN
            ).build_analyzer()


def _train_bpe(texts: list[str], vocab_size: int, lowercase: bool):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``, ids 0–2 special."""
    try:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    except ImportError as exc:
        raise ImportError(
            "tokenizer='bpe' needs the optional 'tokenizers' package: "
            "install sphereml's 'bpe' extra (pip install -e '.[bpe]' from the repository) "
            "or use tokenizer='word' / 'byte'"
        ) from exc
    bpe = Tokenizer(models.BPE())
    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    bpe.normalizer = normalizers.Sequence(norm)
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["[PAD]", "[UNK]", "[CLS]"],  # ids PAD, UNK, CLS in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    return bpe
