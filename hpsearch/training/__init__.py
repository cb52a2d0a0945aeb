"""Training code of the built-in objective: data, model, loop and curve diagnostics.

Modules, imported directly (this package re-exports nothing, so that importing the
torch-free :mod:`hpsearch.training.diagnostics` does not pull in torch):

- :mod:`~hpsearch.training.data`: digits / CIFAR-10, fixed split, preprocessing, cache.
- :mod:`~hpsearch.training.model`: ``CNNConfig`` and ``CNN``; the package's checks.
- :mod:`~hpsearch.training.loop`: ``TrainConfig``, ``fit``, ``evaluate``, ``probe_init``.
- :mod:`~hpsearch.training.diagnostics`: divergence, plateau and overfit flags on curves.
"""
