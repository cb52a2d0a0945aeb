"""Objectives that ship with hpsearch, referenced from study files as ``module:function``.
May import: core, training.

- ``hpsearch.objectives.cnn:objective``: a small CNN with batch normalisation on digits
  (bundled) or CIFAR-10 (local folder). It needs torch and scikit-learn, which only
  ``pip install "hpsearch[cnn]"`` installs (``hpsearch.engine.loader`` says so when they are missing).

Nothing is imported here: loading an objective is the worker's job, and it should pay for
torch only when the study names a torch objective.

A built-in objective's module imports without its heavy dependencies and declares what the
engine asks of it (the engine knows nothing else about it; a ``module:function`` objective
declares nothing and gets its params as they are):

- ``PARAMS``: every key it accepts, with defaults and choices; ``check_params(params)``:
  what a trial would refuse. A study file is validated against both (``spec``).
- ``METRICS``: each metric it can return and which way is better (``spec``).
- ``prepare_params(spec, params)``: what it takes from the search beyond its params, e.g.
  the metric to return (``loader.prepare_params``, before every trial and retrain).
- ``SEEDED``: params that default to the search seed, which ``compare`` keeps for its
  baselines (they run under seeds of their own).
- ``EXTRA``, ``REQUIRES``: the pip extra and the modules it brings (``loader``).
- ``check_data(params, device)``: what ``launch --dry-run`` loads and checks.
"""
