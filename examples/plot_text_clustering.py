"""
Clustering news articles with a von Mises–Fisher mixture
========================================================

TF-IDF rows are directions: two articles on one topic point the same way whatever their
length. :class:`~sphereml.VMFMixture` clusters the L2-normalised rows of the sparse
TF-IDF matrix by EM (Banerjee et al. 2005) — the matrix stays sparse — and learns a
concentration κ per topic: how tightly its articles gather around the mean direction.
We compare with :class:`~sphereml.SphericalKMeans` and scikit-learn's Euclidean
``KMeans`` on the BBC News articles (five topics), and show which topic each cluster
found and the words nearest its mean direction.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import confusion_matrix, normalized_mutual_info_score

from sphereml import SphericalKMeans, VMFMixture
from sphereml.datasets import load_bbc_news

FAST = os.environ.get("SPHEREML_EXAMPLES_FAST") == "1"
news = load_bbc_news()
rng = np.random.default_rng(0)
keep = np.sort(rng.permutation(len(news.data))[:600]) if FAST else np.arange(len(news.data))
texts, y = [news.data[i] for i in keep], news.target[keep]
n_init = 2 if FAST else 10

vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, max_df=0.5)
X = vectorizer.fit_transform(texts)
print(f"{X.shape[0]} articles, {X.shape[1]} features, {X.nnz / X.shape[0]:.0f} non-zeros/row")

# %%
# Three clusterers, one score
# ---------------------------
models = {
    "VMFMixture": VMFMixture(5, n_init=n_init, random_state=0),
    "SphericalKMeans": SphericalKMeans(5, n_init=n_init, random_state=0),
    "KMeans (Euclidean)": KMeans(5, n_init=n_init, random_state=0),
}
labels = {name: model.fit_predict(X) for name, model in models.items()}
for name, found in labels.items():
    print(f"{name:<20} NMI with the topics: {normalized_mutual_info_score(y, found):.3f}")

# %%
# What the mixture found
# ----------------------
vmf = models["VMFMixture"]
words = np.asarray(vectorizer.get_feature_names_out())
for k in np.argsort(-vmf.weights_):
    top = words[np.argsort(-vmf.means_[k])[:6]]
    print(f"cluster {k}: π={vmf.weights_[k]:.2f} κ={vmf.kappas_[k]:.0f}  {' '.join(top)}")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
counts = confusion_matrix(y, labels["VMFMixture"])
left.imshow(counts, cmap="Blues")
left.set_xticks(range(5), [f"cluster {k}" for k in range(5)], rotation=30)
left.set_yticks(range(5), news.target_names)
for (i, j), c in np.ndenumerate(counts):
    left.text(j, i, c, ha="center", va="center", fontsize=8)
left.set_title("topics × VMFMixture clusters")
right.bar(range(5), vmf.kappas_, color="C1")
right.set_xticks(range(5), [f"cluster {k}" for k in range(5)], rotation=30)
right.set_ylabel("concentration κ")
right.set_title("how tightly each cluster gathers")
plt.show()
