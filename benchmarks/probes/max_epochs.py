"""Does doubling ``max_epochs`` lower a neural text classifier's held-out score?

The panel's folds of a text task (5-fold, grouped by article), the estimator's defaults
with ``max_epochs`` m and 2m, for several seeds; one line per seed and a mean::

    python -m benchmarks.probes.max_epochs --data bbc_sentences --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from benchmarks import panel


def main(argv: list[str] | None = None) -> None:
    from sklearn.model_selection import StratifiedGroupKFold

    from sphereml import NGPTTextClassifier

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="bbc_sentences", choices=panel.TEXT_TASKS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=10, help="m (2m is compared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    X, y, groups = panel.load_text(args.data, quick=False)
    splitter = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    folds = list(splitter.split(X, y, groups))
    deltas, losses = [], []
    for seed in args.seeds:
        scores = {}
        for epochs in (args.max_epochs, 2 * args.max_epochs):
            start = time.perf_counter()
            scores[epochs] = panel.evaluate(
                lambda e=epochs, s=seed: NGPTTextClassifier(random_state=s, max_epochs=e),
                X, y, folds,
            )  # fmt: skip
            score, took = scores[epochs], time.perf_counter() - start
            print(
                f"  seed {seed}, max_epochs={epochs}: accuracy {score['accuracy']:.4f}, "
                f"log-loss {score['log_loss']:.4f} ({took:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        short, long = scores[args.max_epochs], scores[2 * args.max_epochs]
        deltas.append(100 * (long["accuracy"] - short["accuracy"]))
        losses.append(long["log_loss"] - short["log_loss"])
        print(f"{args.data} seed {seed}: accuracy {short['accuracy']:.4f} -> "
              f"{long['accuracy']:.4f} ({deltas[-1]:+.2f} points), log-loss "
              f"{short['log_loss']:.4f} -> {long['log_loss']:.4f}", flush=True)  # fmt: skip
    per_seed = ", ".join(f"{d:+.2f}" for d in deltas)
    print(f"{args.data}: doubling max_epochs {args.max_epochs} -> {2 * args.max_epochs}, "
          f"mean {np.mean(deltas):+.2f} points (per seed {per_seed}), "
          f"log-loss mean {np.mean(losses):+.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
