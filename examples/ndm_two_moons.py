"""NDMClassifier on two moons: decision regions and the induced geometry, saved as a PNG.

python examples/ndm_two_moons.py [out.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")

from sklearn.datasets import make_moons  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from sphereml import NDMClassifier  # noqa: E402
from sphereml.plotting import plot_decision_geometry  # noqa: E402


def main(out: str = "ndm_two_moons.png") -> float:
    X, y = make_moons(500, noise=0.1, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = NDMClassifier(random_state=0).fit(Xtr, ytr)
    accuracy = clf.score(Xte, yte)
    fig, _ = plot_decision_geometry(clf, X, y)
    fig.suptitle(f"NDMClassifier on two moons: held-out accuracy {accuracy:.3f}")
    fig.savefig(out, dpi=110)
    print(f"held-out accuracy {accuracy:.3f}; figure written to {out}")
    return accuracy


if __name__ == "__main__":
    main(*sys.argv[1:])
