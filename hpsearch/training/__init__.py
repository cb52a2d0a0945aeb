"""Training code of the built-in objective: data, model, loop and curve diagnostics.
May import: core.

Modules, imported directly (this package re-exports nothing, so that importing the
torch-free :mod:`~hpsearch.training.config` and :mod:`~hpsearch.training.diagnostics` does
not pull in torch):

- :mod:`~hpsearch.training.config`: ``DataConfig``, ``CNNConfig``, ``TrainConfig`` and the
  package's checks, torch-free (study files are validated against them).
- :mod:`~hpsearch.training.data`: digits / CIFAR-10, fixed split, preprocessing, cache.
- :mod:`~hpsearch.training.model`: ``CNN``.
- :mod:`~hpsearch.training.loop`: ``fit``, ``evaluate``, ``probe_init``, ``resolve_device``.
- :mod:`~hpsearch.training.diagnostics`: divergence, plateau and overfit flags on curves.
"""
