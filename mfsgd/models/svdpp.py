"""SVDpp: Koren's SVD++ (a user is also described by the items in N(u)), on the blocked schedule.

The model's parameters, its fitted state (:class:`SVDppState`: the FitState fields plus the
implicit factors, N(u) and the cells' training state) and its math for the epoch loop
(:class:`SVDppKernel`).  Training, prediction, recommendation, persistence and pickling come
from :class:`~mfsgd.models._base.FactorModel`.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp

from .._kernels import _svdpp
from .._validation import as_id_array, as_rating_array, check_float, check_int
from ..data._csr import IndexedRatings, from_index_triplets
from ..data._idmap import IdMap, as_id_list
from ..data.ratings import as_ratings
from ..exceptions import DivergenceError
from ..training.guards import deferred_interrupts
from ..training.layout import aligned_copy, aligned_empty, auto_n_blocks, kernel_rows
from ..training.loop import continue_training, train_epochs
from ..persistence._checks import FieldError
from ..training.seen import check_seen, merged_seen, seen_from_ratings
from ..training.setup import fingerprint, hold_out, indexed_pairs
from ..training.state import FitState
from ..training.svdpp_layout import build_svdpp_layout, implicit_sets
from ._base import FactorModel, _Learned
from ._sgd_params import check_sgd_params
from .mf import MatrixFactorization


def _meta(**metadata):
    return {"metadata": metadata}


@dataclass(eq=False)
class SVDppState(FitState):
    """The fitted state of :class:`SVDpp`: a FitState whose ``user_factors`` are p_u + z_u.

    Attributes
    ----------
    user_p : ndarray, shape (n_users, k)
        The users' own factors p_u (``user_factors`` is p_u + z_u, what q_i is dotted with).
    implicit_factors : ndarray, shape (n_items, k)
        y_j with every pending update written: what ``save`` stores and what training
        starts from after ``load``.
    implicit_indptr, implicit_indices : ndarray of int64, int32
        N(u) of every user as CSR (sorted rows): the rated items plus implicit feedback.
    train_y : ndarray or None
        y as training holds it (rows padded for the kernel; updates of cells still pending
        are not in it), None until a layout is built.
    cell_sums, cell_pending, cell_scale : ndarray or None
        Per cell of the layout: the sum of its y rows as last read, and the pending map
        y <- cell_scale y + cell_pending (see :mod:`mfsgd._kernels._svdpp`).
    """

    user_p: np.ndarray = field(default=None, **_meta(saved="factors", rows="user", grow="draw",
                                                       trained=True))
    implicit_factors: np.ndarray = field(default=None, **_meta(saved="factors", rows="item",
                                                                 grow="draw"))
    implicit_indptr: np.ndarray = field(default=None, **_meta(saved="int64", rows="user",
                                                                grow="indptr"))
    implicit_indices: np.ndarray = field(default=None, **_meta(saved="int32"))
    train_y: Optional[np.ndarray] = field(default=None, **_meta(trained=True))
    cell_sums: Optional[np.ndarray] = field(default=None, **_meta(trained=True))
    cell_pending: Optional[np.ndarray] = field(default=None, **_meta(trained=True))
    cell_scale: Optional[np.ndarray] = field(default=None, **_meta(trained=True))

    @classmethod
    def check_saved(cls, arrays):
        """Raise FieldError unless N(u) in a model file's `arrays` is a valid CSR over its
        users and items, holding every item the user rated."""
        n_users, n_items = len(arrays["user_bias"]), len(arrays["item_bias"])
        try:
            check_seen(arrays["implicit_indptr"], arrays["implicit_indices"], n_users, n_items,
                       "N(u)")
        except ValueError as error:
            raise FieldError("implicit_indptr/implicit_indices", str(error)) from None
        union = merged_seen(arrays["implicit_indptr"], arrays["implicit_indices"],
                            arrays["seen_indptr"], arrays["seen_indices"])
        if len(union[1]) != len(arrays["implicit_indices"]):
            raise FieldError("implicit_indices", "N(u) lacks items the user rated")


class SVDpp(FactorModel):
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
    training is Koren's sequential SGD.  See ``mfsgd/_kernels/_svdpp_impl.h`` for the exact
    order.

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
    user_bias_, item_bias_, global_mean_, rating_range_, history_, best_epoch_, item_titles_
        As for :class:`MatrixFactorization`.
    """

    state_class = SVDppState

    implicit_factors_ = _Learned("implicit_factors", "ndarray, shape (n_items, k): the "
                                 "implicit factors y_j.")

    def __init__(self, n_factors=100, n_epochs=60, learning_rate=0.007, regularization=0.08,
                 implicit_learning_rate=None, implicit_regularization=None,
                 bias_regularization=None, biased=True, init_std=0.01,
                 learning_rate_schedule="constant", learning_rate_decay=0.1, non_negative=False,
                 early_stopping=False, validation_fraction=0.1, patience=5, tol=1e-4,
                 callbacks=None, n_blocks="auto", n_threads=None, random_state=None,
                 dtype=np.float32, verbose=False, show_progress=False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.implicit_learning_rate = implicit_learning_rate
        self.implicit_regularization = implicit_regularization
        self.bias_regularization = bias_regularization
        self.biased = biased
        self.init_std = init_std
        self.learning_rate_schedule = learning_rate_schedule
        self.learning_rate_decay = learning_rate_decay
        self.non_negative = non_negative
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.callbacks = callbacks
        self.n_blocks = n_blocks
        self.n_threads = n_threads
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose
        self.show_progress = show_progress

    def checked_params(self):
        """The parameters, checked and resolved: those of MatrixFactorization, plus
        ``implicit_learning_rate`` and ``implicit_regularization`` (resolved from the explicit
        ones when None).

        Raises
        ------
        TypeError, ValueError
            Naming the first bad parameter, also for the options SVD++ does not offer
            (``learning_rate_schedule="adagrad"``, ``non_negative=True``).
        """
        params = check_sgd_params(self)
        if params["learning_rate_schedule"] == "adagrad":
            raise ValueError("learning_rate_schedule='adagrad' is not available for SVDpp; "
                             "use 'constant' or 'inverse'")
        if params["non_negative"]:
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
    def fit(self, X, validation=None, implicit=None):
        """Train the model on `X` from fresh random factors.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix (rows = users, columns = items) or tuple
            The training ratings, with raw ids as in ``MatrixFactorization.fit``.
        validation : same types as `X`, optional
            Ratings whose RMSE is recorded in `history_` after every epoch (and drives early
            stopping when `early_stopping` is on).
        implicit : mfsgd.Ratings, scipy.sparse matrix or (users, items) tuple, optional
            Extra (user, item) pairs known to have been rated or consumed without a usable
            rating; they join N(u), never the squared error.  Raw ids, as in `X` (a
            matrix's stored entries are the pairs, its row and column indices the ids; a
            Ratings' ratings and a matrix's values are ignored).  Users and items that only
            appear here get factors too.

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained.

        Notes
        -----
        Ctrl-C works as for ``MatrixFactorization.fit``: an interrupt lands between kernel
        calls of about 0.05 s, the model holds the finished sub-epochs and predicts, and
        ``partial_fit`` completes the interrupted epoch exactly.
        """
        with self._training_call("fit"):
            return self._fit(X, validation, implicit=implicit)

    def _fit(self, X, validation, n_epochs=None, implicit=None):
        params = self.checked_params()
        if n_epochs is not None:
            params["n_epochs"] = n_epochs
        train = as_ratings("X", X, copy=False)
        valid = None if validation is None else as_ratings("validation", validation, copy=False)
        extra = None if implicit is None else implicit_ids(implicit)
        self._warn_if_no_openmp(params["n_threads"])
        rng = np.random.default_rng(self.random_state)
        self._forget_fit()
        self._take_titles(X, replace_all=True)
        state, valid_pairs = self._new_svdpp_state(train, valid, extra, params, rng)
        self._state = state
        kernel = self._kernel(params)
        try:
            train_epochs(self, state, kernel, params, params["n_epochs"], valid_pairs,
                         self.early_stopping, self._backend(kernel, params))
        except DivergenceError:
            self._forget_fit()
            raise
        return self

    def _new_svdpp_state(self, train, valid, extra, params, rng):
        user_map, item_map = IdMap(train.user_ids), IdMap(train.item_ids)
        extra_rows = None
        if extra is not None:
            user_map, _ = user_map.extended(extra[0])
            item_map, _ = item_map.extended(extra[1])
            extra_rows = (user_map.lookup(extra[0], "implicit users"),
                          item_map.lookup(extra[1], "implicit items"))
        digest = fingerprint(train)
        train = _grown(train, len(user_map), len(item_map))
        seen_indptr, seen_indices = seen_from_ratings(train)
        holdout = None
        if self.early_stopping and valid is None:
            train, holdout = hold_out(train, params["validation_fraction"], rng)
            digest = fingerprint(train)
        global_mean = float(np.mean(train.data, dtype=np.float64)) if self.biased else 0.0
        extra_csr = _pairs_csr(extra_rows, train.n_users, train.n_items)
        state = SVDppState(
            rating_range=train.rating_range, global_mean=global_mean,
            **self._initial_arrays(rng, train.n_users, train.n_items, params),
            user_map=user_map, item_map=item_map, seen_indptr=seen_indptr,
            seen_indices=seen_indices, rng=rng, implicit_indptr=extra_csr[0],
            implicit_indices=extra_csr[1])
        self._lay_out(state, train, rng)
        state.fingerprint = digest
        return state, (indexed_pairs(state, valid) if valid is not None else holdout)

    def _initial_arrays(self, rng, n_users, n_items, params):
        k, dtype = params["n_factors"], params["dtype"]
        user_p = self._initial_factors(rng, n_users, k, dtype, params)
        item_factors = self._initial_factors(rng, n_items, k, dtype, params)
        implicit_factors = self._initial_factors(rng, n_items, k, dtype, params)
        empty = aligned_empty((0,), dtype)
        return {"user_factors": user_p.copy(), "user_p": user_p, "item_factors": item_factors,
                "implicit_factors": implicit_factors, "user_bias": _zeros(n_users, dtype),
                "item_bias": _zeros(n_items, dtype), "user_grad_sq": empty,
                "item_grad_sq": empty.copy()}

    _initial_factors = staticmethod(MatrixFactorization._initial_factors)

    def _lay_out(self, state, train, rng):
        """Lay `train` (in the state's index space) and N(u) out for the kernel.

        N(u) becomes the state's N(u) joined with the items `train` rates; the cells start
        from ``implicit_factors`` (every update written) with nothing pending.
        """
        k, itemsize = state.n_factors, state.user_factors.itemsize
        n_blocks = (auto_n_blocks(train.n_users, train.n_items, len(train), k, itemsize)
                    if self.n_blocks == "auto"
                    else min(self.n_blocks, train.n_users, train.n_items))
        state.implicit_indptr, state.implicit_indices = implicit_sets(
            train, (state.implicit_indptr, state.implicit_indices))
        layout = build_svdpp_layout(train, state.implicit_indptr, state.implicit_indices,
                                    n_blocks, rng)
        state.layout = layout
        state.train_y = kernel_rows(state.implicit_factors)
        if state.train_y is state.implicit_factors:
            state.train_y = state.train_y.copy()
        width = state.train_y.shape[1]
        state.cell_sums = _zeros((layout.n_cells, width), state.train_y.dtype)
        state.cell_pending = _zeros((layout.n_cells, width), state.train_y.dtype)
        state.cell_scale = np.ones(layout.n_cells, state.train_y.dtype)
        _svdpp.refresh_cells(state.cell_sums, state.train_y, state.cell_scale,
                             state.cell_pending, *layout.cell_arrays(), n_threads=1)
        state.user_counts, state.item_counts = layout.user_counts, layout.item_counts
        state.n_train = len(train)
        state.partial_epoch = None

    def _kernel(self, params):
        return SVDppKernel(params)

    def partial_fit(self, X, n_epochs=1, validation=None, implicit=None):
        """Continue training from the current factors for `n_epochs` more epochs.

        As ``MatrixFactorization.partial_fit``: on an unfitted model this is ``fit``; given
        the same training data (and no `implicit`) it continues exactly where training
        stopped, pending implicit updates included, so ``fit`` for m epochs then
        ``partial_fit`` for n equals ``fit`` for m + n epochs with the same seed.  New data
        (or `implicit`) rebuilds the layout: every pending implicit update is written first;
        N(u) keeps what it held and gains the items `X` rates and the pairs of `implicit`;
        new users and items get fresh random factors (p, q and y) and zero biases.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple of raw ids
        n_epochs : int, default=1
        validation : same types as `X`, optional
        implicit : as in ``fit``, optional

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained.
        DivergenceError
            When training diverges; the model is then left as it was before the call.
        """
        with self._training_call("partial_fit"):
            return self._partial_fit(X, n_epochs, validation, implicit)

    def _partial_fit(self, X, n_epochs, validation, implicit=None):
        n_epochs = check_int("n_epochs", n_epochs, 0)
        if not self._is_fitted():
            return self._fit(X, validation, n_epochs, implicit=implicit)
        params = self.checked_params()
        state, kernel = self._state, self._kernel(params)
        backend = self._backend(kernel, params)
        train = as_ratings("X", X, copy=False)
        extra = None if implicit is None else implicit_ids(implicit)
        digest = fingerprint(train)
        if digest != state.fingerprint or state.layout is None or extra is not None:
            if n_epochs and state.partial_epoch is not None and state.layout is not None:
                continue_training(self, state, kernel, params, 1,
                                  self._validation_pairs(validation), backend)
                n_epochs -= 1
            with deferred_interrupts():
                self._adopt(state, train, extra, params, digest)
        self._take_titles(X, replace_all=False)
        continue_training(self, state, kernel, params, n_epochs,
                          self._validation_pairs(validation), backend)
        return self

    def _adopt(self, state, train, extra, params, digest):
        """Make `train` (raw ids) and `extra` implicit pairs the training data: write every
        pending update into ``implicit_factors`` (``publish`` has), grow the state for new
        ids and lay the data out again."""
        users, items, values = train.index_arrays()
        state.user_map, n_new_users = state.user_map.extended(train.user_ids)
        state.item_map, n_new_items = state.item_map.extended(train.item_ids)
        if extra is not None:
            state.user_map, more_users = state.user_map.extended(extra[0])
            state.item_map, more_items = state.item_map.extended(extra[1])
            n_new_users, n_new_items = n_new_users + more_users, n_new_items + more_items
        state.grow(n_new_users, n_new_items, self._factor_draw(state, params))
        model_space = from_index_triplets(state.user_map.lookup(train.user_ids)[users],
                                          state.item_map.lookup(train.item_ids)[items], values,
                                          len(state.user_map), len(state.item_map))
        if extra is not None:
            rows = (state.user_map.lookup(extra[0]), state.item_map.lookup(extra[1]))
            state.implicit_indptr, state.implicit_indices = _merged_csr(
                (state.implicit_indptr, state.implicit_indices),
                _pairs_csr(rows, model_space.n_users, model_space.n_items))
        low, high = model_space.rating_range
        state.rating_range = (min(low, state.rating_range[0]), max(high, state.rating_range[1]))
        self._lay_out(state, model_space, state.rng)
        state.seen_indptr, state.seen_indices = merged_seen(
            state.seen_indptr, state.seen_indices, *seen_from_ratings(model_space))
        state.fingerprint = digest

    # ------------------------------------------------------------------ new users
    def fold_in(self, user_ratings, user=None, implicit=None):
        """The vector of a user who was not in training, from that user's ratings and items.

        N = the known items of `user_ratings` and of `implicit` fixes the implicit term
        z = |N|^-1/2 sum_{j in N} y_j; p (and the bias, when biased) then solve the model's
        regularized least squares with q, y and the item biases held fixed:
        min sum_i (r_i - mu - b_i - b_u - q_i . (p + z))^2
        + n (regularization |p|^2 + bias_regularization b_u^2).  Without ratings (only
        `implicit`), p = 0 and the bias is 0: the user is described by z alone.

        Parameters
        ----------
        user_ratings : (items, ratings) tuple of arrays, or dict {item: rating}
            Raw item ids, as the model knows them; unknown items are ignored.  May be empty
            (``{}``) when `implicit` names known items.
        user : id, optional
            When given, the user is added to the model under this id (or replaced, if known;
            a known user's N(u) changes, so the next ``partial_fit`` lays the data out again
            and an interrupted epoch is dropped), so that predict and recommend work for it.
        implicit : array-like of item ids, optional
            Items the user consumed without a usable rating; they join N.

        Returns
        -------
        factors : ndarray, shape (n_factors,)
            p + z, the row ``user_factors_`` holds for the user.
        bias : float (0.0 when the model is not biased)
        """
        state = self.fit_state_
        items, values = _user_ratings(user_ratings)
        index = state.item_map.lookup(items, "user_ratings items") if len(items) else \
            np.zeros(0, dtype=np.int64)
        if len(index) != len(values):
            raise ValueError(f"user_ratings: {len(index)} items but {len(values)} ratings")
        known = index >= 0
        index, values = index[known], values[known]
        extra = np.zeros(0, dtype=np.int64)
        if implicit is not None:
            extra = state.item_map.lookup(as_id_array("implicit", implicit), "implicit items")
            extra = extra[extra >= 0]
        n_set = np.unique(np.concatenate([index, extra])).astype(np.int64)
        if not len(n_set):
            raise ValueError("user_ratings and implicit hold no item known to the model")
        params = self.checked_params()
        y = state.implicit_factors
        z = np.einsum("ij->j", y[n_set].astype(np.float64)) / np.sqrt(len(n_set))
        k = state.n_factors
        p, bias = np.zeros(k), 0.0
        if len(index):
            design = state.item_factors[index].astype(np.float64)
            target = values - np.einsum("ij,j->i", design, z)
            if self.biased:
                target = target - (state.global_mean + state.item_bias[index])
            penalty = np.full(k, params["regularization"])
            if self.biased:
                design = np.hstack([design, np.ones((len(index), 1))])
                penalty = np.append(penalty, params["bias_regularization"])
            gram = np.einsum("ij,il->jl", design, design) + np.diag(penalty * len(index))
            solution = np.linalg.solve(gram, np.einsum("ij,i->j", design, target))
            p, bias = (solution[:-1], float(solution[-1])) if self.biased else (solution, 0.0)
        if user is not None:
            self._add_svdpp_user(user, p, z, bias, n_set)
        return p + z, bias

    def _add_svdpp_user(self, user, p, z, bias, n_set):
        state = self.fit_state_
        raw = as_id_list(user)
        known = int(state.user_map.lookup(raw, "user")[0]) >= 0
        self._add_user(user, p + z, bias)
        row = int(state.user_map.lookup(raw, "user")[0])
        state.user_p[row] = p
        state.implicit_indptr, state.implicit_indices = _replaced_row(
            state.implicit_indptr, state.implicit_indices, row, n_set)
        if known and state.layout is not None:
            # The user's cells no longer list N(u): training lays the data out again.
            state.layout, state.partial_epoch = None, None
            state.train_y = state.cell_sums = state.cell_pending = state.cell_scale = None


class SVDppKernel:
    """SVDpp's math for the epoch loop (see :mod:`mfsgd.training.loop`).

    The SGD kernel is :func:`mfsgd._kernels._svdpp.svdpp_epoch` on rows padded to whole
    cache lines: p and q while a training call runs, y (``train_y``) and the cells always.

    Parameters
    ----------
    params : dict
        The model's checked parameters.
    """

    def __init__(self, params):
        self.params = params
        self.flags = _svdpp.FLAG_BIASED if params["biased"] else 0
        self.rows = None

    def learning_rate(self, epoch):
        """The step size of epoch `epoch` (0-based); y's step follows it in proportion."""
        if self.params["learning_rate_schedule"] == "inverse":
            return self.params["learning_rate"] / (1.0 + self.params["learning_rate_decay"]
                                                   * epoch)
        return self.params["learning_rate"]

    def open(self, state):
        """Pad p and q for the kernel and align the biases."""
        k = state.n_factors
        self.rows = kernel_rows(state.user_p), kernel_rows(state.item_factors)
        state.user_p, state.item_factors = self.rows[0][:, :k], self.rows[1][:, :k]
        for name in ("user_bias", "item_bias"):
            setattr(state, name, aligned_copy(getattr(state, name)))

    def run(self, state, blocks, lr, seed):
        """Run the sub-epochs of `blocks`; every block's squared error."""
        layout, params = state.layout, self.params
        lr_y = params["implicit_learning_rate"] * lr / params["learning_rate"]
        # With two blocks a user's runs alternate between its two cells, so the other cell
        # was read one or two sub-epochs before; with three or more every cell is re-read
        # after each sub-epoch (without it, eight blocks oscillated).
        refresh = 1 if layout.n_blocks > 2 else 0
        _svdpp.svdpp_epoch(*self.rows, state.train_y, state.user_bias, state.item_bias,
                           state.cell_sums, state.cell_pending, state.cell_scale,
                           *layout.kernel_arrays(), blocks, layout.order, layout.block_sse,
                           state.global_mean, lr, params["regularization"],
                           params["bias_regularization"], lr_y,
                           params["implicit_regularization"], self.flags, seed, refresh,
                           params["n_threads"])
        return layout.block_sse

    def close(self, state):
        """Plain C-contiguous p and q, and the published arrays current (an interrupted call
        ends here too: the model then predicts from the sub-epochs it finished)."""
        state.user_p = np.ascontiguousarray(state.user_p)
        state.item_factors = np.ascontiguousarray(state.item_factors)
        self.rows = None
        self.publish(state)

    def penalty(self, state):
        """Regularization part of Koren's objective: each rating penalizes its user's p and
        b_u, its item's q and b_i, and the y of every item in its user's N(u).  Written with
        einsum, never BLAS (see MFKernel.penalty).  Rows added after the layout was built
        (``fold_in``) have no training ratings and weigh nothing."""
        layout, params = state.layout, self.params

        def weighted(counts, rows):
            rows = rows[:len(counts)]
            return np.einsum("i,i->", counts, np.einsum("ij,ij->i", rows, rows)
                             .astype(np.float64))

        penalty = (params["regularization"]
                   * (weighted(layout.user_counts, state.user_p)
                      + weighted(layout.item_counts, state.item_factors))
                   + params["implicit_regularization"]
                   * weighted(layout.implicit_weights, state.train_y))
        if params["biased"]:
            penalty += params["bias_regularization"] * (
                weighted(layout.user_counts, state.user_bias[:, None])
                + weighted(layout.item_counts, state.item_bias[:, None]))
        return float(penalty)

    def finite(self, state):
        """Whether the cells' sums and pending updates (not yet in y) are finite."""
        return bool(np.isfinite(np.einsum("ij->", state.cell_sums, dtype=np.float64)
                                + np.einsum("ij->", state.cell_pending, dtype=np.float64)))

    def publish(self, state):
        """``implicit_factors``: y with every pending update written (into a copy: training
        keeps its own order of writes); ``user_factors``: p + z for every user, N(u) from the
        state (so users added by ``fold_in`` after the layout was built count too), written
        in place as MatrixFactorization's training writes its factors."""
        k, layout = state.n_factors, state.layout
        implicit = state.train_y.copy()
        _svdpp.apply_pending(implicit, state.cell_scale, state.cell_pending,
                             layout.cell_item_ptr, layout.cell_items, layout.column_cell_ptr,
                             layout.column_cells, self.params["n_threads"])
        state.implicit_factors = np.ascontiguousarray(implicit[:, :k])
        users = state.user_factors
        if users.shape != state.user_p.shape or not users.flags.c_contiguous \
                or not users.flags.writeable:
            users = np.empty_like(state.user_p, order="C")
        _svdpp.user_vectors(users, np.ascontiguousarray(state.user_p), state.implicit_factors,
                            np.arange(state.n_users + 1, dtype=np.int64), state.implicit_indptr,
                            state.implicit_indices, n_threads=self.params["n_threads"])
        state.user_factors = users


def implicit_ids(implicit):
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


def _user_ratings(user_ratings):
    if isinstance(user_ratings, dict):
        items, values = list(user_ratings.keys()), list(user_ratings.values())
    elif isinstance(user_ratings, tuple) and len(user_ratings) == 2:
        items, values = user_ratings
    else:
        raise TypeError("user_ratings must be an (items, ratings) tuple or a dict "
                        f"{{item: rating}}, got {type(user_ratings).__name__}")
    if len(values) == 0:
        return [], np.zeros(0)
    return items, as_rating_array("user_ratings ratings",
                                  np.atleast_1d(values)).astype(np.float64)


def _pairs_csr(rows, n_users, n_items):
    """(indptr int64, indices int32) of (user rows, item rows) pairs, sorted, without repeats."""
    if rows is None:
        return np.zeros(n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    keys = np.unique(rows[0].astype(np.int64) * n_items + rows[1])
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_items, minlength=n_users), out=indptr[1:])
    return indptr, (keys % n_items).astype(np.int32)


def _merged_csr(a, b):
    """The union of two pair CSRs over the same rows (`a` may have fewer rows)."""
    return merged_seen(a[0], a[1], b[0], b[1])


def _replaced_row(indptr, indices, row, items):
    """The CSR (indptr, indices) with row `row` holding `items` (sorted) instead."""
    items = np.sort(items).astype(np.int32)
    start, end = indptr[row], indptr[row + 1]
    indices = np.concatenate([indices[:start], items, indices[end:]])
    indptr = indptr.copy()
    indptr[row + 1:] += len(items) - (end - start)
    return indptr, indices


def _grown(train, n_users, n_items):
    """`train` over `n_users` x `n_items` (ids that only implicit feedback brought in have no
    ratings), as IndexedRatings in the model's index space."""
    indptr = np.concatenate([np.asarray(train.indptr, dtype=np.int64),
                             np.full(n_users - train.n_users, train.indptr[-1], np.int64)])
    return IndexedRatings(indptr, np.asarray(train.indices, dtype=np.int32), train.data,
                          n_users, n_items)


def _zeros(shape, dtype):
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array
