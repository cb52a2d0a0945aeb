"""hpsearch: coarse-to-fine hyperparameter search on Optuna storage.

Nothing heavy is imported here: ``hpsearch --help``, study validation and the region
maths must stay instant, so torch, optuna, SQLAlchemy and plotly are imported only by the
modules that need them.
"""

__version__ = "0.1.0"
