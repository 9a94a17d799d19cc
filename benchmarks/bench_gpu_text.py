"""NGPTTextClassifier fits on a GPU: eager steps against CUDA-graph steps, nGPT against pre-LN.

Run on a machine with CUDA:  python benchmarks/bench_gpu_text.py [--out results.jsonl]

Synthetic texts (no data needed): 4,000 texts of 8 to 256 words from a 5,000-word
vocabulary, 4 classes, each text with a few class-specific words. Each configuration is
a whole ``fit`` through the public estimator (after one small fit that pays the
process's CUDA start-up) (validation split and early stopping as by
default, ``max_epochs=6``); reported: the mean wall time of epochs 2–6 (epoch 1 carries
the eager first step of each batch shape, compilation and capture), the whole fit, and
the training accuracy as a sanity check. Shapes: the estimator's defaults, and d = 256,
4 layers, batch 128 (the shape of ``probes/ngpt_step.py``). Modes: ``eager`` (skorch's
loop, what a fit did before CUDA-graph steps), ``graph`` (the default on CUDA), and
``compile+graph`` (``compile=True``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from sphereml import NGPTTextClassifier


def texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    out = []
    for label in y:
        length = int(rng.integers(8, 257))
        words = rng.integers(0, 5000, length)
        hits = rng.random(length) < 0.05
        words[hits] = 5000 + 10 * label + rng.integers(0, 10, hits.sum())
        out.append(" ".join(f"w{w}" for w in words))
    return out, y


def run(shape: str, params: dict, mode: str, X, y) -> dict:
    clf = NGPTTextClassifier(**params, device="cuda", compile=mode == "compile+graph")
    if mode == "eager":
        clf._graph_steps = False
    torch.cuda.synchronize()
    start = time.perf_counter()
    clf.fit(X, y)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    durations = [row["dur"] for row in clf.history_]
    steps = clf.net_.__dict__.get("_graph_steps")
    return {
        "shape": shape,
        "architecture": params["architecture"],
        "mode": mode,
        "fit_s": round(seconds, 2),
        "epoch1_s": round(durations[0], 3),
        "later_epoch_s": round(float(np.mean(durations[1:])), 3),
        "epochs": len(durations),
        "graphs": 0 if steps is None else len(steps.graphs),
        "train_accuracy": round(float(clf.score(X[:1000], y[:1000])), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--modes", nargs="*", default=["eager", "graph", "compile+graph"])
    args = parser.parse_args()
    X, y = texts(args.n)
    shapes = {
        "defaults": {},
        "d256_4layers_batch128": {"d_model": 256, "n_layers": 4, "batch_size": 128},
    }
    # the process's CUDA start-up (context, cuBLAS, cuDNN) is not any model's cost
    NGPTTextClassifier(max_epochs=1, device="cuda").fit(X[:200], y[:200])
    records = [{"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}]
    print(json.dumps(records[0]), flush=True)
    for shape, extra in shapes.items():
        for mode in args.modes:
            for architecture in ("transformer", "ngpt"):
                params = {"architecture": architecture, "max_epochs": 6, "random_state": 0}
                record = run(shape, {**params, **extra}, mode, X, y)
                records.append(record)
                print(json.dumps(record), flush=True)
            base, ngpt = records[-2], records[-1]
            ratio = {
                "shape": shape,
                "mode": mode,
                "ngpt_over_preln_epoch": round(ngpt["later_epoch_s"] / base["later_epoch_s"], 3),
                "ngpt_over_preln_fit": round(ngpt["fit_s"] / base["fit_s"], 3),
            }
            records.append(ratio)
            print(json.dumps(ratio), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
