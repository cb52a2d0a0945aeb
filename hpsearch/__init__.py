"""hpsearch: coarse-to-fine hyperparameter search on Optuna storage.

The public API is :func:`launch`, :func:`load` and :class:`Search`; everything else is
private to the package. Nothing heavy is imported here: ``hpsearch --help``, study validation and the region
maths must stay instant, so torch, optuna, SQLAlchemy and plotly are imported only by the
modules that need them.
"""

from hpsearch.api import Search, launch, load

__all__ = ["Search", "launch", "load"]
__version__ = "0.1.0"
