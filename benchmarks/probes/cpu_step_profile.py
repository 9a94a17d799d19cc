"""Where a CPU training step of a neural default spends its time, by torch operator.

    python -m benchmarks.probes.cpu_step_profile --model ndm    # breast_cancer
    python -m benchmarks.probes.cpu_step_profile --model spherical --data pima
    python -m benchmarks.probes.cpu_step_profile --model ngpt   # BBC sentences
    python -m benchmarks.probes.cpu_step_profile --model ngpt --data bbc_articles

A default fit (``NDMClassifier()`` or ``SphericalClassifier()`` on the standardised
table, ``NGPTTextClassifier()`` on 80 % of the texts) with ``torch.profiler`` recording
steps 100–149 (NDM: the members' stacked steps), 20–49 (SphericalClassifier's) or 10–19
(nGPT), what runs between them included; prints the torch
operators by their own CPU time (Python outside the operators is not counted); 2 torch
threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import warnings

import numpy as np
import torch

from benchmarks import panel


def profile_steps(owner: type, method: str, first: int, last: int):
    """Wrap ``owner.method`` so that calls ``first``…``last`` run under the profiler."""
    original = getattr(owner, method)
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    calls = [0]

    def wrapped(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == first:
            profiler.__enter__()
        try:
            return original(self, *args, **kwargs)
        finally:
            if calls[0] == last:
                profiler.__exit__(None, None, None)

    setattr(owner, method, wrapped)
    return profiler, last - first + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["ndm", "spherical", "ngpt"], default="ndm")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    print(f"{platform.machine()}, {os.cpu_count()} cores (2 torch threads), torch "
          f"{torch.__version__}", flush=True)  # fmt: skip
    if args.model in ("ndm", "spherical"):
        from sklearn.preprocessing import StandardScaler

        from sphereml import NDMClassifier, SphericalClassifier
        from sphereml.training.lockstep import _Stack

        X, y, _ = panel.load_table(args.data or "breast_cancer", 3000)
        X = StandardScaler().fit_transform(X)
        if args.model == "ndm":
            profiler, steps = profile_steps(_Stack, "step", 100, 149)
            NDMClassifier(random_state=0).fit(X, y)
        else:
            profiler, steps = profile_steps(_Stack, "step", 20, 49)
            SphericalClassifier(random_state=0).fit(X, y)
    else:
        from sphereml import NGPTTextClassifier
        from sphereml.training.net import TrainingNet

        X, y, _ = panel.load_text(args.data or "bbc_sentences", False)
        keep = np.random.default_rng(0).permutation(len(X))[: int(0.8 * len(X))]
        profiler, steps = profile_steps(TrainingNet, "train_step", 10, 19)
        NGPTTextClassifier(random_state=0, max_epochs=1).fit(X[keep], y[keep])
    averages = profiler.key_averages()
    total_ms = sum(event.self_cpu_time_total for event in averages) / 1000
    print(f"{args.model}: {total_ms / steps:.2f} ms of operator CPU time per step, {steps} steps")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
