"""Objectives that ship with hpsearch, referenced from study files as ``module:function``.

- ``hpsearch.objectives.cnn:objective``: a small CNN with batch normalisation on digits
  (bundled) or CIFAR-10 (local folder). It needs torch and scikit-learn, which only
  ``pip install "hpsearch[cnn]"`` installs (``hpsearch.loader`` says so when they are missing).

Nothing is imported here: loading an objective is the worker's job, and it should pay for
torch only when the study names a torch objective.
"""
