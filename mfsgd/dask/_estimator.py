"""DaskMatrixFactorization: the local estimator's fit, with the ratings and the SGD on workers.

The client keeps a local :class:`mfsgd.MatrixFactorization` (``to_local()``) holding the id
maps, the random generator, the whole factors (the checkpoint, refreshed every epoch) and
the history; it makes every random draw of a local fit in the same order, so that both give
the same bytes.  The training ratings stay on the workers; validation ratings are gathered
on the client.
"""
import copy
import time

import numpy as np

from .._base import ParamsMixin
from .._idmap import IdMap
from .._layout import auto_n_blocks, epoch_schedule
from .._progress import EpochReporter
from .._validation import check_int
from ..model import DivergenceError, MatrixFactorization, NotFittedError, _aligned_full
from . import _blocks, _pipeline
from ._driver import CHECKPOINTS, BlockEpochDriver

STATE_NAMES = {"user_factors": "user_factors_", "item_factors": "item_factors_",
               "user_bias": "user_bias_", "item_bias": "item_bias_",
               "user_grad_sq": "_user_grad_sq", "item_grad_sq": "_item_grad_sq"}


class DaskMatrixFactorization(ParamsMixin):
    """Matrix factorization trained by blocked SGD on a Dask cluster.

    Takes the parameters of :class:`mfsgd.MatrixFactorization` (``n_threads`` has no effect:
    each block runs on one worker thread) plus `client`.  With the same `random_state` and
    `n_blocks`, ``fit(ddf).to_local()`` equals ``MatrixFactorization(...).fit(
    Ratings.from_dataframe(ddf.compute()))`` bit for bit: factors, biases, id maps and the
    training and validation RMSE and objective in ``history_``, whatever the number of
    workers or partitions.  `callbacks` are called with this estimator; `early_stopping`
    needs a validation set given to ``fit`` (``validation_fraction`` is not used).

    Parameters
    ----------
    client : distributed.Client or None, default=None
        The cluster to train on; None uses the current client.
    checkpoint : {"epoch", "sub-epoch"}, default="epoch"
        How often the client gathers the factor blocks, from which training resumes when a
        worker is lost: once per epoch (a lost worker costs the epoch in progress), or after
        every sub-epoch (training resumes after the last completed sub-epoch; the client
        then receives the whole model once per sub-epoch instead of once per epoch).
    **params
        As :class:`mfsgd.MatrixFactorization`.

    Attributes
    ----------
    history_ : list of dict
        Per epoch: epoch, learning_rate, train_rmse, valid_rmse (with validation data),
        objective, seconds (wall time from the previous epoch's end, the epochs overlapping
        on the workers), and with early stopping "best".
    best_epoch_ : int
        With early stopping, the epoch whose factors the model holds.
    blocks_ : mfsgd.dask._pipeline.BlockSet
        The laid-out blocks of the last fit: futures, so the workers keep the blocks while
        this estimator lives (``to_local`` reads the rated items from them); delete the
        estimator or fit again to release them.
    driver_stats_ : dict
        Block tasks submitted, recoveries from lost workers and where they resumed.
    """

    def __init__(self, n_factors=100, n_epochs=60, learning_rate=0.007, regularization=0.08,
                 bias_regularization=None, biased=True, init_std=0.01,
                 learning_rate_schedule="constant", learning_rate_decay=0.1, non_negative=False,
                 early_stopping=False, validation_fraction=0.1, patience=5, tol=1e-4,
                 callbacks=None, n_blocks="auto", n_threads=None, random_state=None,
                 dtype=np.float32, verbose=False, show_progress=False, client=None,
                 checkpoint="epoch"):
        arguments = dict(locals())
        del arguments["self"]
        for name, value in arguments.items():      # stored as given, checked by fit
            setattr(self, name, value)

    def _local_params(self):
        return {name: value for name, value in self.get_params().items()
                if name not in ("client", "checkpoint")}

    def fit(self, ddf, user="user", item="item", rating="rating", validation=None):
        """Train on the ratings of a dask DataFrame from fresh random factors.

        Parameters
        ----------
        ddf : dask.dataframe.DataFrame
            One row per rating: raw user id, raw item id (integers or strings) and rating.
        user, item, rating : str
            Column names.
        validation : dask.dataframe.DataFrame, optional
            Ratings with the same columns, whose RMSE is recorded in `history_` after every
            epoch and drives early stopping when `early_stopping` is on.  Unlike the training
            ratings, they are gathered on the client (as a :class:`mfsgd.Ratings`), so that
            the RMSE is the local fit's to the bit.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            Before any epoch runs: a missing column, a non-finite rating, a (user, item)
            pair rated twice, no ratings, a closed client, bad parameters, or
            `early_stopping` without `validation`.
        """
        local = MatrixFactorization(**self._local_params())
        params = local._checked_params()
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got "
                             f"{self.checkpoint!r}")
        if self.early_stopping and validation is None:
            raise ValueError("early_stopping needs validation= (a dask DataFrame of ratings) "
                             "with DaskMatrixFactorization: it does not hold out a fraction of "
                             "the training ratings")
        client = _pipeline.resolve_client(self.client)
        frame = _pipeline.rating_frame(ddf, user, item, rating)
        valid_frame = None if validation is None else _pipeline.rating_frame(
            validation, user, item, rating, name="validation")
        indexed = _pipeline.index_ratings(client, frame, user, item, rating)
        valid_ratings = None if valid_frame is None else _pipeline.gather_ratings(
            client, valid_frame, user, item, rating)
        rng = np.random.default_rng(self.random_state)
        self._forget_fit()
        n_blocks = self._init_local(local, indexed, params, rng)
        row_block, col_block, seed = _pipeline.draw_assignment(indexed, n_blocks, rng)
        blocks = _pipeline.place_blocks(client, indexed, row_block, col_block, n_blocks, seed)
        del indexed
        valid = None if valid_ratings is None else local._indexed_pairs(valid_ratings)
        self.blocks_ = blocks
        local.history_ = []
        self._local = local
        try:
            self._train(client, local, blocks, params, valid)
        except DivergenceError:
            self._forget_fit()
            raise
        self._seen_blocks = blocks
        return self

    def _init_local(self, local, indexed, params, rng):
        """Set the local model's state as ``MatrixFactorization._init_state`` does, drawing
        the initial factors from `rng` in the same order; returns n_blocks."""
        k, dtype = params["n_factors"], params["dtype"]
        n_users, n_items = len(indexed.user_ids), len(indexed.item_ids)
        if not indexed.sum_is_exact:
            import warnings
            warnings.warn("the sum of these ratings is not exact in float64, so the global "
                          "mean may differ from a local fit's in the last bit", RuntimeWarning,
                          stacklevel=3)
        local._user_map = IdMap(indexed.user_ids)
        local._item_map = IdMap(indexed.item_ids)
        local.rating_range_ = indexed.rating_range
        local.global_mean_ = indexed.global_mean if self.biased else 0.0
        local.user_factors_ = local._initial_factors(rng, n_users, k, dtype, params)
        local.item_factors_ = local._initial_factors(rng, n_items, k, dtype, params)
        local.user_bias_ = _aligned_full(n_users, 0, dtype)
        local.item_bias_ = _aligned_full(n_items, 0, dtype)
        adagrad = params["schedule"] == "adagrad"
        local._user_grad_sq = _aligned_full(n_users if adagrad else 0, 1, dtype)
        local._item_grad_sq = _aligned_full(n_items if adagrad else 0, 1, dtype)
        local._rng = rng
        local._epochs_done = 0
        local._user_counts = indexed.user_counts.astype(np.float64)
        local._item_counts = indexed.item_counts.astype(np.float64)
        local._n_train = indexed.n_ratings
        local.item_titles_ = None
        if self.n_blocks == "auto":
            return auto_n_blocks(n_users, n_items, indexed.n_ratings, k,
                                 local.user_factors_.itemsize)
        return min(check_int("n_blocks", self.n_blocks, 1), n_users, n_items)

    def _train(self, client, local, blocks, params, valid):
        """The epoch loop of ``MatrixFactorization._train_epochs`` with the kernel calls
        replaced by distributed epochs.

        Epoch e + 1 is submitted before epoch e's end is processed (penalty, validation,
        callbacks), with its schedule and seed drawn from a copy of the generator; the
        generator itself draws them only once epoch e has not stopped training, so that
        its state, and every draw, are those of a local fit."""
        if params["non_negative"]:
            np.maximum(local.user_factors_, 0, out=local.user_factors_)
            np.maximum(local.item_factors_, 0, out=local.item_factors_)
        state = {key: getattr(local, name) for key, name in STATE_NAMES.items()}
        settings = _blocks.KernelSettings(local.global_mean_, params["regularization"],
                                          params["bias_regularization"], local._flags(params),
                                          blocks.n_blocks)
        driver = BlockEpochDriver(client, blocks, settings, state, self.checkpoint)
        self._driver = driver
        n_epochs, early_stopping = params["n_epochs"], self.early_stopping
        n_blocks = blocks.n_blocks
        reporter = EpochReporter(n_epochs, self.verbose, self.show_progress, valid is not None)
        best_rmse, best_state, waited = np.inf, None, 0
        try:
            if n_epochs:
                driver.submit_epoch(*self._epoch_draws(local, local._rng, 0, params, n_blocks))
            clock = time.perf_counter()
            for e in range(n_epochs):
                epoch = local._epochs_done
                ahead = None
                if e + 1 < n_epochs:
                    ahead = self._epoch_draws(local, copy.deepcopy(local._rng), epoch + 1, params,
                                               n_blocks)
                    driver.submit_epoch(*ahead)
                block_sse = driver.finish_epoch()
                sse = 0.0
                for value in block_sse.tolist():   # block-index order, as the kernel adds
                    sse += value
                driver.write_state(state)
                now = time.perf_counter()
                seconds, clock = now - clock, now
                lr = local._epoch_learning_rate(params, epoch)
                penalty = local._penalty(params)
                local._check_finite(sse, penalty, lr, epoch)
                local._epochs_done += 1
                record = {"epoch": local._epochs_done, "learning_rate": lr,
                          "train_rmse": float(np.sqrt(sse / local._n_train))}
                if valid is not None:
                    record["valid_rmse"] = local._rmse_on(valid, params["n_threads"])
                record["objective"] = sse + penalty
                record["seconds"] = seconds
                if early_stopping:
                    improved = record["valid_rmse"] < best_rmse - params["tol"]
                    record["best"] = bool(improved)
                    if improved:
                        best_rmse, waited = record["valid_rmse"], 0
                        best_state = (local._epochs_done, local._state_arrays(copy=True))
                    else:
                        waited += 1
                local.history_.append(record)
                self.history_ = local.history_
                reporter.epoch(record)
                stop = any([bool(callback(record, self)) for callback in params["callbacks"]])
                if stop or (early_stopping and waited >= params["patience"]):
                    break
                if ahead is not None:
                    drawn = self._epoch_draws(local, local._rng, epoch + 1, params, n_blocks)
                    if not (np.array_equal(drawn[0], ahead[0]) and drawn[2] == ahead[2]):
                        raise RuntimeError("the epoch submitted ahead was drawn differently "
                                           "from the generator's next draws")
        finally:
            reporter.close()
            self.driver_stats_ = dict(driver.stats)
            driver.close()
        if early_stopping and best_state is not None:
            local.best_epoch_ = best_state[0]
            local._restore_state(best_state[1])
            self.best_epoch_ = local.best_epoch_
        self.history_ = local.history_
        for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_",
                     "rating_range_", "global_mean_"):
            setattr(self, name, getattr(local, name))

    @staticmethod
    def _epoch_draws(local, rng, epoch, params, n_blocks):
        """(schedule, learning rate, seed) of epoch `epoch` (from 0), drawn from `rng` in
        the order of a local epoch."""
        schedule = epoch_schedule(n_blocks, rng)
        seed = int(rng.integers(0, 2**63))
        return schedule, local._epoch_learning_rate(params, epoch), seed

    def to_local(self, seen=True):
        """The fitted model as a plain :class:`mfsgd.MatrixFactorization`.

        Parameters
        ----------
        seen : bool, default=True
            Gather from the workers which items each user rated (4 bytes per rating, no
            rating values), so that ``recommend`` can leave them out and ``save`` works.

        Returns
        -------
        MatrixFactorization
            A copy; later fits of this estimator do not change it.
        """
        self._check_fitted()
        local = self._local
        if seen and not hasattr(local, "_seen_indptr"):
            local._seen_indptr, local._seen_indices = _gather_seen(
                self._resolved_client(), self._seen_blocks, len(local._user_map),
                len(local._item_map))
        return copy.deepcopy(local)

    def _resolved_client(self):
        return _pipeline.resolve_client(self.client)

    def _check_fitted(self):
        if not hasattr(self, "_seen_blocks"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def predict(self, users, items):
        """Predict ratings for (user, item) pairs of raw ids (on the client); see
        :meth:`mfsgd.MatrixFactorization.predict`."""
        self._check_fitted()
        return self._local.predict(users, items)

    @property
    def user_ids_(self):
        """Raw user id of each factor row."""
        self._check_fitted()
        return self._local.user_ids_

    @property
    def item_ids_(self):
        """Raw item id of each factor row."""
        self._check_fitted()
        return self._local.item_ids_

    def _forget_fit(self):
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)
        for name in ("_local", "_driver", "_seen_blocks"):
            self.__dict__.pop(name, None)


def _block_pairs(layout):
    """(local users, local items) of one block layout, one pair per rating."""
    users = np.repeat(layout.run_user, np.diff(layout.run_ptr))
    return layout.blk, users, layout.items


def _gather_seen(client, blocks, n_users, n_items):
    """The seen-items CSR (indptr int64, indices int32, items sorted within users) of the
    training ratings, built from the block layouts."""
    pairs = client.gather([client.submit(_block_pairs, layout, pure=False)
                           for layout in blocks.layouts.values()])
    keys = []
    for blk, users, items in pairs:
        r, c = divmod(blk, blocks.n_blocks)
        keys.append(blocks.users_of_row[r][users].astype(np.int64) * n_items
                    + blocks.items_of_col[c][items])
    keys = np.sort(np.concatenate(keys))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_items, minlength=n_users), out=indptr[1:])
    return indptr, (keys % n_items).astype(np.int32)
