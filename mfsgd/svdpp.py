"""SVD++: matrix factorization with an implicit-feedback term, on the blocked SGD schedule."""
import time

import numpy as np
import scipy.sparse as sp

from . import _svdpp
from ._csr import IndexedRatings
from ._idmap import IdMap
from ._layout import aligned_empty, auto_n_blocks, epoch_schedule, padded_width
from ._progress import EpochReporter
from ._seen import seen_from_ratings
from ._svdpp_layout import build_svdpp_layout, implicit_sets
from ._validation import as_id_array, check_float
from .model import DivergenceError, MatrixFactorization, _fingerprint, _hold_out
from .ratings import as_ratings

STATE = ("P", "Q", "Y", "user_bias", "item_bias", "V", "D", "C")


class SVDpp(MatrixFactorization):
    """SVD++ (Koren, KDD 2008) trained by stochastic gradient descent.

    Predicts r_ui = mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j), where
    N(u) holds the items user u rated plus any extra implicit feedback given to ``fit``.  The
    item factors y_j describe a user by what they chose to rate, so that users with few
    ratings still get an informed vector.

    Training applies Koren's per-rating SGD rules on the same blocked, segment-shuffled
    schedule as :class:`MatrixFactorization` (bit-identical results on any number of
    threads).  Within a user's run (the user's ratings in one column block) the rules are
    exact, with the implicit sum carried along in O(k) per rating; the run's y-updates are
    written once, to the y rows of that column block at the end of the run and to the other
    column blocks' rows at the user's next run there.  So the implicit sum a run starts from
    misses only (a) what other blocks wrote, during the current sub-epoch, into the user's y
    rows of other column blocks, and (b) other users' y-updates still waiting for their next
    run in that column block (at most one epoch).  With ``n_blocks=1`` neither happens:
    training is Koren's sequential SGD.  See ``mfsgd/_svdpp_impl.h`` for the exact order.

    Parameters
    ----------
    n_factors, n_epochs, learning_rate, regularization, bias_regularization, biased, \
init_std, learning_rate_schedule, learning_rate_decay, early_stopping, validation_fraction, \
patience, tol, callbacks, n_blocks, n_threads, random_state, dtype, verbose, show_progress
        As for :class:`MatrixFactorization`; `learning_rate_schedule` is "constant" or
        "inverse" (the implicit learning rate follows the same decay).
    implicit_learning_rate : float or None, default=None
        SGD step of the implicit factors y; None uses `learning_rate`.
    implicit_regularization : float or None, default=None
        L2 penalty on y, applied per rating as in Koren's rule; None uses `regularization`.
    non_negative : bool, default=False
        Must be False (projected SGD is not available for SVD++).

    Attributes
    ----------
    user_factors_ : ndarray, shape (n_users, k)
        p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j: the vector that q_i is dotted with.
    item_factors_ : ndarray, shape (n_items, k)
    implicit_factors_ : ndarray, shape (n_items, k)
        y_j, with every pending update applied.
    user_bias_, item_bias_, global_mean_, rating_range_, history_, best_epoch_
        As for :class:`MatrixFactorization`.
    """

    def __init__(self, n_factors=100, n_epochs=60, learning_rate=0.007, regularization=0.08,
                 implicit_learning_rate=None, implicit_regularization=None,
                 bias_regularization=None, biased=True, init_std=0.01,
                 learning_rate_schedule="constant", learning_rate_decay=0.1, non_negative=False,
                 early_stopping=False, validation_fraction=0.1, patience=5, tol=1e-4,
                 callbacks=None, n_blocks="auto", n_threads=None, random_state=None,
                 dtype=np.float32, verbose=False, show_progress=False):
        super().__init__(
            n_factors=n_factors, n_epochs=n_epochs, learning_rate=learning_rate,
            regularization=regularization, bias_regularization=bias_regularization,
            biased=biased, init_std=init_std, learning_rate_schedule=learning_rate_schedule,
            learning_rate_decay=learning_rate_decay, non_negative=non_negative,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, tol=tol, callbacks=callbacks, n_blocks=n_blocks,
            n_threads=n_threads, random_state=random_state, dtype=dtype, verbose=verbose,
            show_progress=show_progress)
        self.implicit_learning_rate = implicit_learning_rate
        self.implicit_regularization = implicit_regularization

    def _checked_params(self):
        params = super()._checked_params()
        if params["schedule"] == "adagrad":
            raise ValueError("learning_rate_schedule='adagrad' is not available for SVDpp; "
                             "use 'constant' or 'inverse'")
        if self.non_negative:
            raise ValueError("non_negative=True is not available for SVDpp")
        params["implicit_learning_rate"] = (
            params["learning_rate"] if self.implicit_learning_rate is None
            else check_float("implicit_learning_rate", self.implicit_learning_rate,
                             strictly_positive=True))
        params["implicit_regularization"] = (
            params["regularization"] if self.implicit_regularization is None
            else check_float("implicit_regularization", self.implicit_regularization,
                             minimum=0.0))
        return params

    # ------------------------------------------------------------------ training
    def fit(self, X, implicit=None, validation=None):
        """Train the model on `X` from fresh random factors.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix (rows = users, columns = items) or tuple
            The training ratings, with raw ids as in ``MatrixFactorization.fit``.
        implicit : mfsgd.Ratings, scipy.sparse matrix or (users, items) tuple, optional
            Extra (user, item) pairs known to have been rated or consumed without a usable
            rating; they join N(u), never the squared error.  Raw ids, as in `X` (a
            matrix's stored entries are the pairs, its row and column indices the ids; a
            Ratings' ratings and a matrix's values are ignored).  Users and items that only
            appear here get factors too.
        validation : same types as `X`, optional
            Ratings whose RMSE is recorded in `history_` after every epoch (and drives early
            stopping when `early_stopping` is on).

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained.
        """
        with self._training_call("fit"):
            return self._fit_svdpp(X, implicit, validation)

    def _fit_svdpp(self, X, implicit, validation):
        params = self._checked_params()
        train = as_ratings("X", X, copy=False)
        valid = None if validation is None else as_ratings("validation", validation, copy=False)
        raw_pairs = None if implicit is None else _implicit_ids(implicit)
        self._warn_if_no_openmp(params["n_threads"])
        rng = np.random.default_rng(self.random_state)
        self._forget_fit()
        self._take_titles(X, replace_all=True)
        self._user_map = IdMap(train.user_ids)
        self._item_map = IdMap(train.item_ids)
        pairs = None if raw_pairs is None else self._implicit_pairs(*raw_pairs)
        train = _grown(train, len(self._user_map), len(self._item_map))
        self._seen_indptr, self._seen_indices = seen_from_ratings(train)
        holdout = None
        if self.early_stopping and valid is None:
            train, holdout = _hold_out(train, params["validation_fraction"], rng)
        self._init_state(train, pairs, params, rng)
        valid_pairs = self._indexed_pairs(valid) if valid is not None else holdout
        self.history_ = []
        try:
            self._run_epochs(params, params["n_epochs"], valid_pairs, self.early_stopping)
        except DivergenceError:
            self._forget_fit()
            raise
        return self

    def _implicit_pairs(self, users, items):
        """Model rows (users, items) of raw implicit pairs, growing the id maps for ids that
        the ratings did not have."""
        self._user_map, _ = self._user_map.extended(users)
        self._item_map, _ = self._item_map.extended(items)
        return (self._user_map.lookup(users, "implicit users"),
                self._item_map.lookup(items, "implicit items"))

    def _init_state(self, train, pairs, params, rng):
        k, dtype = params["n_factors"], params["dtype"]
        width = padded_width(k, np.dtype(dtype).itemsize)
        n_users, n_items = train.n_users, train.n_items
        self.rating_range_ = train.rating_range
        self.global_mean_ = float(np.mean(train.data, dtype=np.float64)) if self.biased else 0.0
        state = {name: _padded_normal(rng, n, k, width, dtype, params["init_std"])
                 for name, n in (("P", n_users), ("Q", n_items), ("Y", n_items))}
        state["user_bias"] = _aligned_zeros((n_users,), dtype)
        state["item_bias"] = _aligned_zeros((n_items,), dtype)
        implicit = None
        if pairs is not None:
            matrix = sp.csr_matrix((np.ones(len(pairs[0]), np.int8), pairs),
                                   shape=(n_users, n_items))
            implicit = (matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32))
        n_blocks = (auto_n_blocks(n_users, n_items, len(train), k, np.dtype(dtype).itemsize)
                    if self.n_blocks == "auto" else min(self.n_blocks, n_users, n_items))
        layout = build_svdpp_layout(train, *implicit_sets(train, implicit), n_blocks, rng)
        state["V"] = _aligned_zeros((layout.n_cells, width), dtype)
        state["D"] = _aligned_zeros((layout.n_cells, width), dtype)
        state["C"] = np.ones(layout.n_cells, dtype)
        _svdpp.refresh_cells(state["V"], state["Y"], state["C"], state["D"],
                             *layout.cell_arrays(), n_threads=params["n_threads"])
        self._svd_state, self._svd_layout = state, layout
        self._rng = rng
        self._epochs_done = 0
        self._n_train = len(train)
        self._fingerprint = _fingerprint(train)

    def _run_epochs(self, params, n_epochs, valid, early_stopping):
        state, layout = self._svd_state, self._svd_layout
        flags = _svdpp.FLAG_BIASED if self.biased else 0
        reporter = EpochReporter(n_epochs, self.verbose, self.show_progress, valid is not None)
        best_rmse, best_state, waited = np.inf, None, 0
        try:
            for _ in range(n_epochs):
                epoch = self._epochs_done
                lr = self._epoch_learning_rate(params, epoch)
                lr_y = params["implicit_learning_rate"] * lr / params["learning_rate"]
                schedule = epoch_schedule(layout.n_blocks, self._rng)
                seed = int(self._rng.integers(0, 2**63))
                start = time.perf_counter()
                sse = _svdpp.svdpp_epoch(
                    *(state[name] for name in STATE), *layout.kernel_arrays(), schedule,
                    layout.order, layout.block_sse, self.global_mean_, lr,
                    params["regularization"], params["bias_regularization"], lr_y,
                    params["implicit_regularization"], flags, seed, self._refresh_every(),
                    params["n_threads"])
                seconds = time.perf_counter() - start
                penalty = self._penalty(params)
                if not self._pending_finite():
                    sse = float("nan")
                self._check_finite(sse, penalty, lr, epoch)
                self._epochs_done += 1
                record = {"epoch": self._epochs_done, "learning_rate": lr,
                          "train_rmse": float(np.sqrt(sse / self._n_train))}
                if valid is not None:
                    self._publish(params)
                    record["valid_rmse"] = self._rmse_on(valid, params["n_threads"])
                record["objective"] = sse + penalty
                record["seconds"] = seconds
                if early_stopping:
                    improved = record["valid_rmse"] < best_rmse - params["tol"]
                    record["best"] = bool(improved)
                    if improved:
                        best_rmse, waited = record["valid_rmse"], 0
                        best_state = (self._epochs_done,
                                      {name: array.copy() for name, array in state.items()})
                    else:
                        waited += 1
                self.history_.append(record)
                reporter.epoch(record)
                stop = any([bool(callback(record, self)) for callback in params["callbacks"]])
                if stop or (early_stopping and waited >= params["patience"]):
                    break
        finally:
            reporter.close()
        if early_stopping and best_state is not None:
            self.best_epoch_ = best_state[0]
            state.update(best_state[1])
        self._publish(params)

    def _refresh_every(self):
        """Sub-epochs between refreshes of the cells' sums: every sub-epoch with three or more
        blocks.  With one block a user's only cell is re-read at its run; with two, a user's
        runs alternate between its two cells, so the other cell was read one or two
        sub-epochs before (on MovieLens 100K refreshing as well changed 5-fold RMSE by 1e-5
        and cost 14 % of the epoch)."""
        return 1 if self._svd_layout.n_blocks > 2 else 0

    def _publish(self, params):
        """Set the public attributes from the training state: every pending implicit update
        applied to a copy of y, and the user vectors p_u + z_u."""
        state, layout, k = self._svd_state, self._svd_layout, params["n_factors"]
        implicit = state["Y"].copy()
        _svdpp.apply_pending(implicit, state["C"], state["D"], layout.cell_item_ptr,
                             layout.cell_items, layout.column_cell_ptr, layout.column_cells,
                             params["n_threads"])
        users = np.empty_like(state["P"])
        _svdpp.user_vectors(users, state["P"], implicit, *layout.cell_arrays(),
                            n_threads=params["n_threads"])
        self.user_factors_ = np.ascontiguousarray(users[:, :k])
        self.item_factors_ = np.ascontiguousarray(state["Q"][:, :k])
        self.implicit_factors_ = np.ascontiguousarray(implicit[:, :k])
        self.user_bias_ = state["user_bias"].copy()
        self.item_bias_ = state["item_bias"].copy()

    def _penalty(self, params):
        """Regularization part of Koren's objective: each rating penalizes its user's p and
        b_u, its item's q and b_i, and the y of every item in its user's N(u).  Written with
        einsum, not BLAS: see MatrixFactorization._penalty."""
        state, layout = self._svd_state, self._svd_layout

        def weighted(counts, rows):
            return np.einsum("i,i->", counts, np.einsum("ij,ij->i", rows, rows)
                             .astype(np.float64))

        penalty = (params["regularization"]
                   * (weighted(layout.user_counts, state["P"])
                      + weighted(layout.item_counts, state["Q"]))
                   + params["implicit_regularization"]
                   * weighted(layout.implicit_weights, state["Y"]))
        if self.biased:
            penalty += params["bias_regularization"] * (
                weighted(layout.user_counts, state["user_bias"][:, None])
                + weighted(layout.item_counts, state["item_bias"][:, None]))
        return float(penalty)

    def _pending_finite(self):
        """Whether the cells' sums and pending updates (not yet in y) are all finite."""
        state = self._svd_state
        return bool(np.isfinite(np.einsum("ij->", state["V"], dtype=np.float64)
                                + np.einsum("ij->", state["D"], dtype=np.float64)))

    def _forget_fit(self):
        super()._forget_fit()
        for name in ("_svd_state", "_svd_layout", "_n_train"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ not yet for SVD++
    def partial_fit(self, X, n_epochs=1, validation=None):
        """Not available for SVDpp yet; call ``fit``.

        Raises
        ------
        NotImplementedError
        """
        raise NotImplementedError("SVDpp.partial_fit is not available yet; call fit")

    def fold_in(self, user_ratings, user=None):
        """Not available for SVDpp yet (it would need the user's implicit term).

        Raises
        ------
        NotImplementedError
        """
        raise NotImplementedError("SVDpp.fold_in is not available yet")

    def save(self, path):
        """Not available for SVDpp yet (the file format has no implicit factors); pickle
        the model instead.

        Raises
        ------
        NotImplementedError
        """
        raise NotImplementedError("SVDpp.save is not available yet; pickle the model instead")

    @classmethod
    def load(cls, path):
        """Not available for SVDpp yet; see :meth:`save`.

        Raises
        ------
        NotImplementedError
        """
        raise NotImplementedError("SVDpp.load is not available yet")


def _implicit_ids(implicit):
    """Raw (users, items) id arrays of implicit feedback given as a Ratings, a scipy.sparse
    matrix (its stored entries) or a (users, items) tuple."""
    if isinstance(implicit, tuple) and len(implicit) == 2:
        users = as_id_array("implicit[0] (users)", implicit[0])
        items = as_id_array("implicit[1] (items)", implicit[1])
        if len(users) != len(items):
            raise ValueError(f"implicit: users and items must have the same length, got "
                             f"{len(users)} and {len(items)}")
        return users, items
    if sp.issparse(implicit):
        if implicit.ndim != 2:
            raise ValueError(f"implicit must be two-dimensional, got {implicit.ndim} "
                             "dimensions")
        coo = implicit.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)
    if hasattr(implicit, "to_arrays"):
        users, items, _ = implicit.to_arrays()
        return users, items
    raise TypeError("implicit must be a mfsgd.Ratings, a scipy.sparse matrix or a "
                    f"(users, items) tuple of raw ids, got {type(implicit).__name__}")


def _grown(train, n_users, n_items):
    """`train` over `n_users` x `n_items` (ids that only implicit feedback brought in have no
    ratings), as IndexedRatings in the model's index space."""
    if n_users == train.n_users and n_items == train.n_items and \
            isinstance(train, IndexedRatings):
        return train
    indptr = np.concatenate([np.asarray(train.indptr, dtype=np.int64),
                             np.full(n_users - train.n_users, train.indptr[-1], np.int64)])
    return IndexedRatings(indptr, np.asarray(train.indices, dtype=np.int32), train.data,
                          n_users, n_items)


def _aligned_zeros(shape, dtype):
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array


def _padded_normal(rng, n, k, width, dtype, std):
    """(n, width) cache-line aligned rows: k normal(0, std) values, then zeros."""
    out = _aligned_zeros((n, width), dtype)
    values = np.empty((n, k), dtype)
    rng.standard_normal(out=values, dtype=dtype)
    out[:, :k] = values * np.dtype(dtype).type(std)
    return out
