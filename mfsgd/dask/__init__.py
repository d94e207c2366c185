"""Training on a Dask cluster: the same blocked SGD as local ``fit``, block by block on workers.

Needs the optional extra ``pip install "mfsgd[dask]"`` (dask[distributed] and pyarrow); the
core package never imports this module.  With the same ``random_state`` and ``n_blocks``,
:class:`DaskMatrixFactorization` gives the factors, biases, id maps and training history of a
local :class:`mfsgd.MatrixFactorization` fitted on the same ratings, bit for bit, whatever the
number of workers or partitions.

The pieces, each usable on its own:

- :mod:`mfsgd.dask._pipeline`: raw ids and ratings of a dask DataFrame to id maps, rating
  counts and one laid-out block per worker (the ratings never reach the client);
- :mod:`mfsgd.dask._blocks`: on workers, one block's layout
  (:func:`mfsgd.training.layout.lay_out_block`) and one block's SGD pass
  (:meth:`mfsgd.models.mf.MFKernel.run_block`);
- :mod:`mfsgd.dask._driver`: epochs of B sub-epochs of B block tasks, with the factor blocks
  checkpointed on the client after every sub-epoch (or once per epoch) and recovery from a
  lost worker;
- :mod:`mfsgd.dask._estimator`: the estimator (a MatrixFactorization that trains in the shared
  epoch loop, :mod:`mfsgd.training.loop`, through a Dask backend).
"""
try:
    import dask  # noqa: F401
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        'mfsgd.dask needs dask[distributed] (and pyarrow for Parquet): '
        'pip install "mfsgd[dask]"') from error

from ._estimator import DaskMatrixFactorization

__all__ = ["DaskMatrixFactorization"]
