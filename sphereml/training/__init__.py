"""The training engine under the neural estimators: model-agnostic, built on skorch.

- :mod:`~sphereml.training.batching`: :class:`BatchIterator`, mini-batches sliced from
  whole tensors (shuffling from its own generator, dynamic padding, length buckets,
  data-parallel shards).
- :mod:`~sphereml.training.callbacks`: early stopping that clones the best weights, and
  the projection of constrained parameters back onto the sphere after each step.
- :mod:`~sphereml.training.net`: :class:`TrainingNet`, the skorch net (sample weights,
  module-defined loss and penalty, lazy ``torch.compile``), and seeding.
- :mod:`~sphereml.training.accelerate`: data-parallel training through accelerate.
- :mod:`~sphereml.training.graph_epoch` and :mod:`~sphereml.training.graph_step`: a
  training epoch, or a training step per batch shape, captured as CUDA graphs.

It knows modules only through their ``forward``/``per_sample_loss`` and the optimiser
classes; estimators live in :mod:`sphereml.neural`. This package is internal: its names
may change between releases.
"""
