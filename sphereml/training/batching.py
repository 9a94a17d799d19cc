"""Mini-batches cut from whole tensors, the training and validation iterators of every
net of the package.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["BUCKET_BATCHES", "BatchIterator"]

# dynamic padding sorts runs of this many shuffled batches by length (BatchIterator),
# which pads short texts far less than unsorted batches do
BUCKET_BATCHES = 16


class BatchIterator:
    """Mini-batches by slicing whole tensors (skorch's ``iterator_train``/``_valid``).

    torch's DataLoader fetches and collates sample by sample, which costs more than the
    training step for small models. The data (a dict of equal-length arrays in a skorch
    ``Dataset``, or a ``Subset`` of one after the validation split) are converted once
    and moved to ``device`` once; each epoch draws one permutation from the iterator's
    own generator.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        shard: tuple[int, int] | None = None,
        trim_mask: str | None = None,
        length_multiple: int = 1,
        bucket_batches: int = 1,
    ) -> None:
        self.source = dataset
        indices = None
        if isinstance(dataset, torch.utils.data.Subset):
            indices = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
            dataset = dataset.dataset
        X, y = dataset.X, dataset.y

        def load(a):
            if sp.issparse(a):  # stays a CSR matrix on the host; batches are densified
                a = sp.csr_matrix(a)
                return a if indices is None else a[indices.numpy()]
            t = torch.as_tensor(a)
            return (t if indices is None else t[indices]).to(device)

        self.device = device
        self.X = {k: load(v) for k, v in X.items()}
        self.y = None if y is None else load(y)
        self.n = next(iter(self.X.values())).shape[0]
        # Dynamic padding: with ``trim_mask`` naming a right-padded (n, L) boolean input,
        # each batch is cut to its longest row (every input of width L is cut alike),
        # rounded up to a multiple of ``length_multiple`` (few shapes for CUDA graphs).
        self.trim_mask = trim_mask
        self.length_multiple = int(length_multiple)
        # With dynamic padding and shuffling, each run of ``bucket_batches`` batches of the
        # shuffled order is sorted by length before it is cut into batches, and the batches
        # are then shuffled (fairseq's and Hugging Face's length grouping): batches of
        # similar lengths pad less, and a new permutation each epoch still mixes them.
        self.bucket_batches = int(bucket_batches)
        self.lengths = None
        if trim_mask is not None:
            mask = torch.as_tensor(np.asarray(X[trim_mask]))
            if indices is not None:
                mask = mask[indices]
            positions = torch.arange(1, mask.shape[1] + 1)
            self.lengths = (mask.cpu() * positions).amax(dim=1)  # last True + 1, per row
            self.width = mask.shape[1]
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        # (process index, number of processes): every process draws the same order and
        # takes every n-th sample of each global batch
        self.shard = shard
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def _rows(self, values, take, host_take):
        if sp.issparse(values):
            rows = host_take.numpy() if isinstance(host_take, torch.Tensor) else host_take
            return torch.as_tensor(values[rows].toarray()).to(self.device)
        return values[take]

    def draw_order(self) -> torch.Tensor:
        """This epoch's permutation of the samples (host tensor, from the own generator);
        consecutive ``batch_size`` slices of it are the batches."""
        order = torch.randperm(self.n, generator=self.generator)
        if self.lengths is None or self.bucket_batches < 2:
            return order
        size = self.batch_size * self.bucket_batches
        chunks = []
        for start in range(0, self.n, size):
            chunk = order[start : start + size]
            by_length = torch.argsort(self.lengths[chunk], descending=True, stable=True)
            chunks.append(chunk[by_length])
        order = torch.cat(chunks)
        full = self.n // self.batch_size  # the short last batch stays last
        batches = order[: full * self.batch_size].view(full, self.batch_size)
        batches = batches[torch.randperm(full, generator=self.generator)]
        return torch.cat([batches.reshape(-1), order[full * self.batch_size :]])

    def __iter__(self):
        order: Any = None
        host_order: Any = None
        if self.shuffle:
            host_order = self.draw_order()
            order = host_order.to(self.device)
        take: Any
        host_take: Any
        for start in range(0, self.n, self.batch_size):
            if order is None:
                take = host_take = slice(start, start + self.batch_size)
            else:
                take = order[start : start + self.batch_size]
                host_take = host_order[start : start + self.batch_size]
            if self.shard is not None:
                index, count = self.shard
                size = min(self.batch_size, self.n - start)
                if size < count:  # too few samples to give every process one: skip
                    continue
                if order is None:
                    take = host_take = torch.arange(start, start + size)[index::count]
                else:
                    take, host_take = take[index::count], host_take[index::count]
            Xb = {k: self._rows(v, take, host_take) for k, v in self.X.items()}
            if self.lengths is not None:
                rows = slice(start, start + self.batch_size)
                batch_lengths = self.lengths[rows if host_order is None else host_order[rows]]
                length = max(int(batch_lengths.max()), 1)  # the host copy: no device sync
                multiple = self.length_multiple
                length = min(-(-length // multiple) * multiple, self.width)
                Xb = {
                    k: v[:, :length] if v.ndim == 2 and v.shape[1] == self.width else v
                    for k, v in Xb.items()
                }
            yield Xb, (None if self.y is None else self.y[take])
