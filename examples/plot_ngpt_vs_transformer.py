"""
nGPT against the pre-LN Transformer on raw text
===============================================

:class:`~sphereml.NGPTTextClassifier` trains the normalised Transformer (nGPT,
Loshchilov et al. 2024) on raw strings: every embedding row, weight vector and hidden
state lies on the unit sphere, and each block moves the hidden state a learned step α
along the sphere, ``h ← Norm(h + α (Norm(f(h)) − h))``. ``architecture="transformer"``
trains the standard pre-LayerNorm Transformer of the same size, the baseline nGPT is
measured against. Both read BBC News articles; the plot shows their validation losses
per epoch and the held-out accuracy of each.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from sphereml import NGPTTextClassifier
from sphereml.datasets import load_bbc_news

FAST = os.environ.get("SPHEREML_EXAMPLES_FAST") == "1"
news = load_bbc_news()
X, y = np.array(news.data, dtype=object), news.target
if FAST:
    keep = np.random.default_rng(0).permutation(len(X))[:500]
    X, y = X[keep], y[keep]
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

shape = dict(d_model=32, n_layers=1, n_heads=2, max_length=64) if FAST else {}
curves = {}
for architecture in ("ngpt", "transformer"):
    clf = NGPTTextClassifier(
        architecture,
        max_epochs=4 if FAST else 10,
        early_stopping=True,
        n_iter_no_change=None,
        random_state=0,
        **shape,
    ).fit(Xtr, ytr)
    curves[architecture] = clf.validation_loss_curve_
    print(f"{architecture:<12} held-out accuracy {clf.score(Xte, yte):.3f}")

# %%
# Validation loss per epoch
# -------------------------
fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
for architecture, curve in curves.items():
    ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", label=architecture)
ax.set_xlabel("epoch")
ax.set_ylabel("validation cross-entropy")
ax.legend()
plt.show()
