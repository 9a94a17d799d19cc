"""Tokenisation of raw text for the text estimators (no downloads, no extra packages).

See :mod:`sphereml.text.tokenizer`.
"""

from .tokenizer import CLS, PAD, UNK, TextTokenizer, check_texts

__all__ = ["CLS", "PAD", "UNK", "TextTokenizer", "check_texts"]
