"""One process of a data-parallel fit, for ``tests/test_distributed.py``.

Run by the test in two processes (torch.distributed over gloo on the CPU, configured by
the RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT environment variables, as
``accelerate launch`` or ``torchrun`` set them). Writes the fitted weights and loss
curve of this process to ``<out>/rank<i>.npz``.
"""

from __future__ import annotations

import sys

import numpy as np


def fit(name: str, accelerator=None):
    """The fit both the processes and the single-process reference run."""
    from sphereml import NDMClassifier, SphericalClassifier
    from sphereml.datasets import make_vmf_blobs

    X, y = make_vmf_blobs(480, 6, centers=3, kappa=5.0, random_state=0)
    common = dict(max_epochs=3, batch_size=64, random_state=0, accelerator=accelerator)
    if name == "SphericalClassifier":  # early stopping: a validation split every epoch
        model = SphericalClassifier((8,), early_stopping=True, n_iter_no_change=5, **common)
    else:  # a module whose training forward returns (logits, penalty)
        model = NDMClassifier(latent_dim=2, n_iter_no_change=None, **common)
    return model.fit(X, y)


if __name__ == "__main__":
    import torch
    from accelerate import Accelerator

    torch.set_num_threads(1)
    name, out = sys.argv[1], sys.argv[2]
    accelerator = Accelerator(cpu=True)
    model = fit(name, accelerator)
    weights = {k: v.detach().cpu().numpy() for k, v in model.net_.module_.state_dict().items()}
    np.savez(
        f"{out}/rank{accelerator.process_index}.npz",
        loss_curve=np.array(model.loss_curve_),
        n_processes=accelerator.num_processes,
        **{f"weight:{k}": v for k, v in weights.items()},
    )
