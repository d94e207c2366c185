"""The estimator: parameters, input checks, the epoch schedule, history, predict and score."""
import hashlib
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from . import _sgd, metrics, persistence
from . import recommend as _recommend
from ._base import EstimatorMixin
from ._csr import IndexedRatings, from_index_triplets, take
from ._guards import deferred_interrupts, exclusive_training
from ._heap import release_freed_memory
from ._idmap import IdMap, as_id_list, first_unknown
from ._layout import (aligned_copy, aligned_empty, auto_n_blocks, build_layout, epoch_schedule,
                      kernel_rows)
from ._progress import EpochReporter
from ._seen import grown_indptr, merged_seen, seen_from_ratings
from ._threads import usable_cpus
from ._validation import (as_rating_array, check_choice, check_dtype, check_float,
                          check_int)
from .ratings import as_ratings

SCHEDULES = ("constant", "inverse", "adagrad")
SCORES = ("rmse", "mae")
# Sub-epochs run in kernel calls of about this many seconds, with Ctrl-C checked between them:
# short enough for an interrupt to land at once, long enough that the ~10-30 us of a call
# does not count on small data (where one call runs a whole epoch).
CHECK_SECONDS = 0.05


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became infinite or NaN."""


class NotFittedError(ValueError, AttributeError):
    """The model was used before ``fit``."""


class MatrixFactorization(EstimatorMixin):
    """Matrix factorization trained by stochastic gradient descent.

    Predicts r_ui = p_u . q_i, plus mu + b_u + b_i when `biased`, and minimizes, over the known
    ratings, sum (r_ui - r_ui_hat)^2 + regularization (|p_u|^2 + |q_i|^2)
    + bias_regularization (b_u^2 + b_i^2) by SGD, one rating at a time.

    The defaults were chosen by a grid search on MovieLens 100K's u1 split (RMSE 0.9174 on
    u1.test; Surprise's SVD defaults give 0.951 there).

    Parameters
    ----------
    n_factors : int, default=100
        Number of latent factors k.
    n_epochs : int, default=60
        Passes over the training ratings.
    learning_rate : float, default=0.007
        SGD step size alpha.
    regularization : float, default=0.08
        L2 penalty lambda on the factors.
    bias_regularization : float or None, default=None
        L2 penalty on the biases; None uses `regularization`.
    biased : bool, default=True
        Learn a global mean and user/item biases.
    init_std : float, default=0.01
        Standard deviation of the normal initial factors.  Small starts matter: on
        MovieLens 100K (u1) 0.01 gives RMSE 0.918 where 0.1 gives 0.925.
    learning_rate_schedule : {"constant", "inverse", "adagrad"}, default="constant"
        "inverse": alpha_t = alpha / (1 + learning_rate_decay * t) at epoch t (t from 0);
        "adagrad": per-row adaptive steps alpha / sqrt(G), G starting at 1 and accumulating
        the mean squared gradient of the factor row (as in LIBMF); biases keep the plain step.
    learning_rate_decay : float, default=0.1
        Decay of the "inverse" schedule.
    non_negative : bool, default=False
        Keep factors >= 0 (projected SGD, as LIBMF's non-negative MF).
    early_stopping : bool, default=False
        Track validation RMSE (the `validation` set given to fit, else a held-out
        `validation_fraction` of the training ratings), stop after `patience` epochs without
        an improvement of at least `tol`, and restore the factors of the best epoch.
    validation_fraction : float, default=0.1
        Share of the training ratings held out for early stopping without a validation set.
    patience : int, default=5
        Epochs without improvement before early stopping stops.
    tol : float, default=1e-4
        Smallest decrease of validation RMSE that counts as an improvement.
    callbacks : callable, list of callables or None
        Called after every epoch as ``callback(record, model)``; a true return value stops
        training (after recording the epoch).
    n_blocks : int or "auto", default="auto"
        Row/column blocks of the stratified schedule (1 = plain serial SGD over users in
        segment-shuffled order). "auto" picks 2, 4, 8 or 16 from the data size and k (see
        ``mfsgd._layout.auto_n_blocks``). Results depend on it, not on the thread count.
    n_threads : int or None, default=None
        Most OpenMP threads; None uses as many as the CPUs this process may use (its
        affinity mask, capped by a container's CPU quota).  Each step of training gets fewer
        when its work is too small to pay for more threads.
    random_state : int, numpy Generator or None
        Seed of the initial factors and of the visiting order.
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the factors.
    verbose : bool, default=False
        Print one table line per epoch.
    show_progress : bool, default=False
        Show a tqdm progress bar over epochs (optional extra ``mfsgd[progress]``).

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray, shape (n_users, k), (n_items, k)
    user_bias_, item_bias_ : ndarray (zeros when not biased)
    global_mean_ : float (0 when not biased)
    rating_range_ : (float, float)
        Smallest and largest training rating; predictions are clipped to it.
    history_ : list of dict
        Per epoch: epoch, learning_rate, train_rmse, valid_rmse (with validation data),
        objective, seconds, and with early stopping "best" (True on the best epoch so far).
    best_epoch_ : int
        With early stopping, the epoch whose factors the model holds.
    item_titles_ : dict or None
        Raw item id -> title: the ``item_titles`` of the Ratings given to ``fit`` (for
        example from ``load_movielens``), merged with those of later ``partial_fit`` data;
        or a mapping you set.  ``save`` stores it and ``load`` restores it (a dict, or
        None).  A ``fit`` on data without titles keeps a mapping you set, not titles that
        came with earlier data.
    """

    def __init__(self, n_factors=100, n_epochs=60, learning_rate=0.007, regularization=0.08,
                 bias_regularization=None, biased=True, init_std=0.01,
                 learning_rate_schedule="constant", learning_rate_decay=0.1, non_negative=False,
                 early_stopping=False, validation_fraction=0.1, patience=5, tol=1e-4,
                 callbacks=None, n_blocks="auto", n_threads=None, random_state=None,
                 dtype=np.float32, verbose=False, show_progress=False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
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

    # ------------------------------------------------------------------ checks
    def _checked_params(self):
        params = {
            "n_factors": check_int("n_factors", self.n_factors, 1),
            "n_epochs": check_int("n_epochs", self.n_epochs, 0),
            "learning_rate": check_float("learning_rate", self.learning_rate, strictly_positive=True),
            "regularization": check_float("regularization", self.regularization, minimum=0.0),
            "init_std": check_float("init_std", self.init_std, minimum=0.0),
            "schedule": check_choice("learning_rate_schedule", self.learning_rate_schedule, SCHEDULES),
            "decay": check_float("learning_rate_decay", self.learning_rate_decay, minimum=0.0),
            "dtype": check_dtype("dtype", self.dtype),
            "patience": check_int("patience", self.patience, 1),
            "tol": check_float("tol", self.tol, minimum=0.0),
        }
        params["bias_regularization"] = (
            params["regularization"] if self.bias_regularization is None
            else check_float("bias_regularization", self.bias_regularization, minimum=0.0))
        fraction = check_float("validation_fraction", self.validation_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        params["validation_fraction"] = fraction
        for name in ("biased", "non_negative", "verbose", "early_stopping", "show_progress"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.n_blocks != "auto":
            check_int("n_blocks", self.n_blocks, 1)
        params["non_negative"] = self.non_negative
        params["callbacks"] = _checked_callbacks(self.callbacks)
        params["n_threads"] = self._thread_count()
        return params

    def _thread_count(self):
        if self.n_threads is None:
            return usable_cpus()
        return check_int("n_threads", self.n_threads, 1)

    # ------------------------------------------------------------------ training
    def fit(self, X, validation=None):
        """Train the model on `X` from fresh random factors.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix (rows = users, columns = items) or tuple
            The training ratings.  A (users, items, ratings[, timestamps]) tuple holds raw ids,
            as in ``Ratings.from_arrays``; a matrix's row and column indices are its raw ids
            (``Ratings.from_sparse``).  Only ids that hold a rating get factors: rows or
            columns of a matrix without any entry, and integer ids that do not occur, are
            unknown to the model (predicted from the global mean and the known bias, never
            recommended nor returned as neighbours).
        validation : same types as `X`, optional
            Ratings whose RMSE is recorded in `history_` after every epoch (and drives early
            stopping when `early_stopping` is on).

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained (``fit`` or ``partial_fit`` running in
            another thread, or called again from a callback).

        Notes
        -----
        **Ctrl-C.**  An interrupt (SIGINT, KeyboardInterrupt) during training lands between two
        sub-epochs (an epoch is `n_blocks` sub-epochs; the kernel runs them in calls of about
        0.05 s, so an interrupt lands within that or one sub-epoch) or between epochs, never
        inside one update of the model's state.  The model then holds
        the complete epochs, which `history_` lists, plus the finished sub-epochs of the
        interrupted epoch, which have no `history_` entry yet; it predicts, recommends and
        saves as it is.  The next ``partial_fit`` first completes that epoch, counting it as
        one of its epochs, so ``fit`` for n epochs, interrupted after m complete ones, then
        ``partial_fit(X, n_epochs=n - m)`` gives bit for bit the model and `history_` of an
        uninterrupted ``fit`` (``seconds`` aside); so does a pickled copy.  ``save`` does not
        store the unfinished epoch.  An interrupt before the first epoch leaves the model
        unfitted; with early stopping, an interrupted fit keeps its latest factors, not the
        best ones.  Interrupts are held back like this only when training runs in the main
        thread (Python delivers signals nowhere else).
        """
        with self._training_call("fit"):
            return self._fit(X, validation)

    def _fit(self, X, validation, n_epochs=None):
        params = self._checked_params()
        if n_epochs is not None:
            params["n_epochs"] = n_epochs
        train = as_ratings("X", X, copy=False)
        valid = None if validation is None else as_ratings("validation", validation, copy=False)
        self._warn_if_no_openmp(params["n_threads"])
        rng = np.random.default_rng(self.random_state)
        self._forget_fit()
        self._take_titles(X, replace_all=True)
        self._user_map = IdMap(train.user_ids)
        self._item_map = IdMap(train.item_ids)
        # Held-out ratings for early stopping were rated too: remember them before the split.
        self._seen_indptr, self._seen_indices = seen_from_ratings(train)
        holdout = None
        if self.early_stopping and valid is None:
            train, holdout = _hold_out(train, params["validation_fraction"], rng)
        shape = (train.n_users, train.n_items)
        self._init_state(train, params, rng)
        # The layout holds its own copy of the ratings: without the last reference to the
        # converted rating set, its values are freed before the factors exist (peak memory).
        del train
        release_freed_memory()
        self._init_factors(*shape, params, rng)
        valid_pairs = self._indexed_pairs(valid) if valid is not None else holdout
        self.history_ = []
        try:
            self._run_epochs(params, params["n_epochs"], valid_pairs, self.early_stopping)
        except DivergenceError:
            self._forget_fit()
            raise
        return self

    def partial_fit(self, X, n_epochs=1, validation=None):
        """Continue training from the current factors for `n_epochs` more epochs.

        On an unfitted model this is ``fit`` with `n_epochs` epochs.  Given the same training
        data as before it continues exactly where ``fit`` stopped: ``fit`` for m epochs then
        ``partial_fit`` for n equals ``fit`` for m + n epochs with the same seed.  Users or
        items that `X` introduces get fresh random factors and zero biases; the others keep
        theirs.  The global mean stays the one learned by ``fit``; early stopping is not
        applied here.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple of raw ids
            As in ``fit``; ids new to the model get rows.
        n_epochs : int, default=1
        validation : same types as `X`, optional

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained.
        DivergenceError
            When training diverges; the model is then left as it was before the call.

        Notes
        -----
        After an interrupted ``fit`` or ``partial_fit`` (see ``fit``), the interrupted epoch
        is completed first, on the data it started with, and counts as the first of the
        `n_epochs`.
        """
        with self._training_call("partial_fit"):
            return self._partial_fit(X, n_epochs, validation)

    def _partial_fit(self, X, n_epochs, validation):
        n_epochs = check_int("n_epochs", n_epochs, 0)
        if not hasattr(self, "user_factors_"):
            return self._fit(X, validation, n_epochs)
        params = self._checked_params()
        train = as_ratings("X", X, copy=False)
        fingerprint = _fingerprint(train)
        if fingerprint != getattr(self, "_fingerprint", None) or not hasattr(self, "_layout"):
            if n_epochs and hasattr(self, "_partial_epoch"):
                self._continue_training(params, 1, self._validation_pairs(validation))
                n_epochs -= 1
            with deferred_interrupts():
                self._adopt_training_data(train, params, fingerprint)
        self._take_titles(X, replace_all=False)
        self._continue_training(params, n_epochs, self._validation_pairs(validation))
        return self

    @contextmanager
    def _training_call(self, method):
        """One training call at a time on this object; no half-built model if set-up fails."""
        with exclusive_training(self, method):
            try:
                yield
            except BaseException:
                # history_ is set once set-up is complete (an exception before fit's set-up
                # began leaves the previous model, history_ included, untouched).
                if not hasattr(self, "history_"):
                    self._forget_fit()
                raise

    def _take_titles(self, X, replace_all):
        """Keep the item titles a rating set carries (e.g. from load_movielens)."""
        titles = getattr(X, "item_titles", None)
        if titles is None:
            self.__dict__.setdefault("item_titles_", None)
            return
        kept = {} if replace_all or self.__dict__.get("item_titles_") is None \
            else dict(self.item_titles_)
        kept.update(titles)
        self.item_titles_ = kept
        self._titles_from_data = True

    def _validation_pairs(self, validation):
        return None if validation is None else \
            self._indexed_pairs(as_ratings("validation", validation, copy=False))

    def _continue_training(self, params, n_epochs, valid_pairs):
        """partial_fit's epochs; when training diverges, the model returns to where it was."""
        snapshot = self._snapshot()
        try:
            self._run_epochs(params, n_epochs, valid_pairs, early_stopping=False)
        except DivergenceError:
            self._restore_snapshot(snapshot)
            raise

    def _adopt_training_data(self, train, params, fingerprint):
        """Map new training data into this model's index space, growing it for new ids."""
        users, items, values = train.index_arrays()
        self._user_map, n_new_users = self._user_map.extended(train.user_ids)
        self._item_map, n_new_items = self._item_map.extended(train.item_ids)
        self._grow(n_new_users, n_new_items, params)
        model_space = from_index_triplets(self._user_map.lookup(train.user_ids)[users],
                                          self._item_map.lookup(train.item_ids)[items], values,
                                          len(self._user_map), len(self._item_map))
        lo, hi = model_space.rating_range
        self.rating_range_ = (min(lo, self.rating_range_[0]), max(hi, self.rating_range_[1]))
        self._prepare_training(model_space, params, self._rng)
        self._seen_indptr, self._seen_indices = merged_seen(
            self._seen_indptr, self._seen_indices, *seen_from_ratings(model_space))
        self._fingerprint = fingerprint

    def _grow(self, n_new_users, n_new_items, params):
        k, dtype = self.user_factors_.shape[1], self.user_factors_.dtype
        adagrad = len(self._user_grad_sq) > 0
        if n_new_users:
            self._seen_indptr = grown_indptr(self._seen_indptr, len(self.user_bias_) + n_new_users)
            fresh = self._initial_factors(self._rng, n_new_users, k, dtype, params)
            self.user_factors_ = np.vstack([self.user_factors_, fresh])
            self.user_bias_ = np.concatenate([self.user_bias_, np.zeros(n_new_users, dtype)])
            if adagrad:
                self._user_grad_sq = np.concatenate([self._user_grad_sq, np.ones(n_new_users, dtype)])
        if n_new_items:
            fresh = self._initial_factors(self._rng, n_new_items, k, dtype, params)
            self.item_factors_ = np.vstack([self.item_factors_, fresh])
            self.item_bias_ = np.concatenate([self.item_bias_, np.zeros(n_new_items, dtype)])
            if adagrad:
                self._item_grad_sq = np.concatenate([self._item_grad_sq, np.ones(n_new_items, dtype)])

    def _warn_if_no_openmp(self, n_threads):
        if n_threads > 1 and not _sgd.HAVE_OPENMP and self.n_threads is not None:
            warnings.warn("mfsgd was built without OpenMP; training uses one thread",
                          RuntimeWarning, stacklevel=3)

    def _init_state(self, train, params, rng):
        """What training needs from the rating set: its statistics and layout (the factors
        come after, from :meth:`_init_factors`)."""
        self.rating_range_ = train.rating_range
        self.global_mean_ = float(np.mean(train.data, dtype=np.float64)) if self.biased else 0.0
        self._rng = rng
        self._epochs_done = 0
        self._prepare_training(train, params, rng, params["n_factors"],
                               np.dtype(params["dtype"]).itemsize)
        self._fingerprint = _fingerprint(train)

    def _init_factors(self, n_users, n_items, params, rng):
        """Fresh random factors, zero biases and adagrad accumulators."""
        k, dtype = params["n_factors"], params["dtype"]
        self.user_factors_ = self._initial_factors(rng, n_users, k, dtype, params)
        self.item_factors_ = self._initial_factors(rng, n_items, k, dtype, params)
        self.user_bias_ = _aligned_full(n_users, 0, dtype)
        self.item_bias_ = _aligned_full(n_items, 0, dtype)
        adagrad = params["schedule"] == "adagrad"
        self._user_grad_sq = _aligned_full(n_users if adagrad else 0, 1, dtype)
        self._item_grad_sq = _aligned_full(n_items if adagrad else 0, 1, dtype)

    def _prepare_training(self, train, params, rng, k=None, itemsize=None):
        """Lay the training ratings out for the kernel and count ratings per row (for
        factors of k values of `itemsize` bytes; default: those of the current factors)."""
        if k is None:
            k, itemsize = self.user_factors_.shape[1], self.user_factors_.itemsize
        n_blocks = (auto_n_blocks(train.n_users, train.n_items, len(train), k, itemsize)
                    if self.n_blocks == "auto" else min(self.n_blocks, train.n_users, train.n_items))
        item_counts = _sgd.count_items(np.ascontiguousarray(train.indices, dtype=np.int32),
                                       train.n_items)
        self._layout = build_layout(train, n_blocks, rng, item_counts)
        self._user_counts = np.diff(train.indptr).astype(np.float64)
        self._item_counts = item_counts.astype(np.float64)
        self._n_train = len(train)

    @staticmethod
    def _initial_factors(rng, n, k, dtype, params):
        factors = aligned_empty((n, k), dtype)
        rng.standard_normal(out=factors, dtype=dtype)
        factors *= np.dtype(dtype).type(params["init_std"])
        return np.abs(factors, out=factors) if params.get("non_negative") else factors

    def _flags(self, params):
        return ((_sgd.FLAG_BIASED if self.biased else 0)
                | (_sgd.FLAG_ADAGRAD if params["schedule"] == "adagrad" else 0)
                | (_sgd.FLAG_NONNEG if self.non_negative else 0))

    def _epoch_learning_rate(self, params, epoch):
        if params["schedule"] == "inverse":
            return params["learning_rate"] / (1.0 + params["decay"] * epoch)
        return params["learning_rate"]

    def _run_epochs(self, params, n_epochs, valid, early_stopping):
        """Run `n_epochs` epochs; the rest of an interrupted epoch counts as the first.

        SIGINT is held back to the points between sub-epochs and between epochs (see
        ``mfsgd._guards.deferred_interrupts``), where the model's state is consistent.
        """
        with deferred_interrupts() as check_interrupt:
            self._train_epochs(params, n_epochs, valid, early_stopping, check_interrupt)

    def _train_epochs(self, params, n_epochs, valid, early_stopping, check_interrupt):
        k = self.user_factors_.shape[1]
        user_rows, item_rows = kernel_rows(self.user_factors_), kernel_rows(self.item_factors_)
        self.user_factors_, self.item_factors_ = user_rows[:, :k], item_rows[:, :k]
        for name in ("user_bias_", "item_bias_", "_user_grad_sq", "_item_grad_sq"):
            setattr(self, name, aligned_copy(getattr(self, name)))
        flags = self._flags(params)
        if self.non_negative:
            np.maximum(self.user_factors_, 0, out=self.user_factors_)
            np.maximum(self.item_factors_, 0, out=self.item_factors_)
        reporter = EpochReporter(n_epochs, self.verbose, self.show_progress, valid is not None)
        best_rmse, best_state, waited = np.inf, None, 0
        sub_epoch_seconds = None
        try:
            for _ in range(n_epochs):
                epoch = self._epochs_done
                lr = self._epoch_learning_rate(params, epoch)
                sse, seconds, sub_epoch_seconds = self._epoch(
                    params, lr, (user_rows, item_rows), flags, check_interrupt,
                    sub_epoch_seconds)
                penalty = self._penalty(params)
                self._check_finite(sse, penalty, lr, epoch)
                self._epochs_done += 1
                record = {"epoch": self._epochs_done, "learning_rate": lr,
                          "train_rmse": float(np.sqrt(sse / self._n_train))}
                if valid is not None:
                    record["valid_rmse"] = self._rmse_on(valid, params["n_threads"])
                record["objective"] = sse + penalty
                record["seconds"] = seconds
                if early_stopping:
                    improved = record["valid_rmse"] < best_rmse - params["tol"]
                    record["best"] = bool(improved)
                    if improved:
                        best_rmse, waited = record["valid_rmse"], 0
                        best_state = (self._epochs_done, self._state_arrays(copy=True))
                    else:
                        waited += 1
                self.history_.append(record)
                reporter.epoch(record)
                stop = any([bool(callback(record, self)) for callback in params["callbacks"]])
                if stop or (early_stopping and waited >= params["patience"]):
                    break
                check_interrupt()
        finally:
            reporter.close()
            self.user_factors_ = np.ascontiguousarray(self.user_factors_)
            self.item_factors_ = np.ascontiguousarray(self.item_factors_)
        if early_stopping and best_state is not None:
            self.best_epoch_ = best_state[0]
            self._restore_state(best_state[1])

    def _epoch(self, params, lr, rows, flags, check_interrupt, sub_epoch_seconds=None):
        """One epoch, sub-epoch by sub-epoch (or the rest of an interrupted one).

        The sub-epochs run in kernel calls of about CHECK_SECONDS each (one sub-epoch per call
        until `sub_epoch_seconds`, the time of one, is known); the results do not depend on
        how they are grouped.  Between calls `check_interrupt` may raise (KeyboardInterrupt);
        the epoch then stays in `_partial_epoch`: its schedule and seed, the sub-epochs done
        and the squared errors of their blocks, so that finishing it later gives the same
        updates and the same sum of squared errors as an uninterrupted epoch.

        Returns
        -------
        sse : float
            Sum of squared errors over the epoch, summed block by block in block order.
        seconds : float
            Time spent in the kernel.
        sub_epoch_seconds : float or None
            The time of one sub-epoch, as last measured.
        """
        layout = self._layout
        part = getattr(self, "_partial_epoch", None)
        if part is None:
            schedule = epoch_schedule(layout.n_blocks, self._rng)
            seed = int(self._rng.integers(0, 2**63))
            part = self._partial_epoch = _PartialEpoch(schedule, seed,
                                                       np.zeros(layout.n_blocks ** 2))
            layout.schedule = schedule
        n_sub = len(part.schedule)
        while part.done < n_sub:
            first = part.done
            count = 1 if not sub_epoch_seconds else int(CHECK_SECONDS / sub_epoch_seconds)
            last = min(n_sub, first + max(1, count))
            start = time.perf_counter()
            _sgd.sgd_epoch(*rows, self.user_bias_, self.item_bias_, self._user_grad_sq,
                           self._item_grad_sq, layout.block_ptr, layout.run_user,
                           layout.run_ptr, layout.items, layout.ratings,
                           part.schedule[first:last], layout.order, layout.block_sse,
                           self.global_mean_, lr, params["regularization"],
                           params["bias_regularization"], flags, part.seed,
                           params["n_threads"], self.user_factors_.shape[1],
                           layout.block_seconds, None, layout.block_cpu_seconds)
            elapsed = time.perf_counter() - start
            part.seconds += elapsed
            sub_epoch_seconds = elapsed / (last - first)
            blocks = part.schedule[first:last].ravel()
            part.block_sse[blocks] = layout.block_sse[blocks]
            part.done = last
            if part.done < n_sub:
                try:
                    check_interrupt()
                except KeyboardInterrupt as interrupt:
                    _add_note(interrupt, f"mfsgd: training stopped after {self._epochs_done} "
                              f"complete epochs and {part.done} of {n_sub} sub-epochs of the "
                              f"next; partial_fit completes that epoch and continues exactly")
                    raise
        del self._partial_epoch
        sse = 0.0
        for value in part.block_sse.tolist():
            sse += value
        return sse, part.seconds, sub_epoch_seconds

    def _snapshot(self):
        """The training state partial_fit returns to when training diverges."""
        part = getattr(self, "_partial_epoch", None)
        return (self._state_arrays(copy=True), self._epochs_done, len(self.history_),
                self._rng.bit_generator.state, None if part is None else part.copy())

    def _restore_snapshot(self, snapshot):
        arrays, epochs_done, n_records, rng_state, part = snapshot
        self._restore_state(arrays)
        self._epochs_done = epochs_done
        del self.history_[n_records:]
        self._rng.bit_generator.state = rng_state
        self.__dict__.pop("_partial_epoch", None)
        if part is not None:
            self._partial_epoch = part

    def _state_arrays(self, copy):
        names = ("user_factors_", "item_factors_", "user_bias_", "item_bias_",
                 "_user_grad_sq", "_item_grad_sq")
        return {name: (getattr(self, name).copy() if copy else getattr(self, name))
                for name in names}

    def _restore_state(self, state):
        for name, value in state.items():
            setattr(self, name, value)

    def _check_finite(self, sse, penalty, lr, epoch):
        # The penalty sums the square of every factor (weighted by counts; 0 * inf is nan),
        # so it is finite only when every factor is.
        if np.isfinite(sse) and np.isfinite(penalty):
            return
        raise DivergenceError(
            f"training diverged at epoch {epoch + 1}: the squared error became {sse!r} with "
            f"learning_rate={lr:g}; use a smaller learning_rate (e.g. {lr / 10:g})")

    def _penalty(self, params):
        """Regularization part of the objective: each rating penalizes its own user and item.

        Written with einsum, never BLAS (``@``/``np.dot``): OpenBLAS worker threads busy-wait
        after a call and would steal the cores from the next epoch's OpenMP threads (measured:
        2 threads fell from 1.9x to 0.8x of one thread's speed)."""
        reg, bias_reg = params["regularization"], params["bias_regularization"]
        user_sq = np.einsum("ij,ij->i", self.user_factors_, self.user_factors_).astype(np.float64)
        item_sq = np.einsum("ij,ij->i", self.item_factors_, self.item_factors_).astype(np.float64)
        penalty = reg * (np.einsum("i,i->", self._user_counts, user_sq)
                         + np.einsum("i,i->", self._item_counts, item_sq))
        if self.biased:
            user_b = self.user_bias_.astype(np.float64)
            item_b = self.item_bias_.astype(np.float64)
            penalty += bias_reg * (np.einsum("i,i,i->", self._user_counts, user_b, user_b)
                                   + np.einsum("i,i,i->", self._item_counts, item_b, item_b))
        return float(penalty)

    def _forget_fit(self):
        # An item_titles_ the user set survives a new fit; titles taken from data do not.
        titles_from_data = self.__dict__.pop("_titles_from_data", False)
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")
                     and (n != "item_titles_" or titles_from_data)]:
            delattr(self, name)
        for name in ("_layout", "_rng", "_user_grad_sq", "_item_grad_sq", "_fingerprint",
                     "_user_map", "_item_map", "_seen_indptr", "_seen_indices",
                     "_partial_epoch"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ new users
    def fold_in(self, user_ratings, user=None):
        """Factors for a user who was not in training, from that user's ratings alone.

        Solves the model's regularized least squares for the user's factors (and bias, when
        biased) with the item factors and biases held fixed:
        min sum_i (r_i - mu - b_i - b_u - p . q_i)^2 + n (regularization |p|^2
        + bias_regularization b_u^2), the same objective SGD minimizes for that user.

        Parameters
        ----------
        user_ratings : (items, ratings) tuple of arrays, or dict {item: rating}
            Raw item ids, as the model knows them; unknown items are ignored.
        user : id, optional
            When given, the user is added to the model under this id (or replaced, if known),
            so that predict and recommend work for it.

        Returns
        -------
        factors : ndarray, shape (n_factors,)
        bias : float (0.0 when the model is not biased)
        """
        self._check_fitted()
        if isinstance(user_ratings, dict):
            items, values = list(user_ratings.keys()), list(user_ratings.values())
        elif isinstance(user_ratings, tuple) and len(user_ratings) == 2:
            items, values = user_ratings
        else:
            raise TypeError("user_ratings must be an (items, ratings) tuple or a dict "
                            f"{{item: rating}}, got {type(user_ratings).__name__}")
        values = as_rating_array("user_ratings ratings", np.atleast_1d(values)).astype(np.float64)
        index = self._item_map.lookup(items, "user_ratings items")
        if len(index) != len(values):
            raise ValueError(f"user_ratings: {len(index)} items but {len(values)} ratings")
        known = index >= 0
        if not known.any():
            raise ValueError("user_ratings holds no item known to the model")
        index, values = index[known], values[known]
        params = self._checked_params()
        design = self.item_factors_[index].astype(np.float64)
        target = values - (self.global_mean_ + self.item_bias_[index] if self.biased else 0.0)
        penalty = np.full(design.shape[1], params["regularization"])
        if self.biased:
            design = np.hstack([design, np.ones((len(index), 1))])
            penalty = np.append(penalty, params["bias_regularization"])
        gram = design.T @ design + np.diag(penalty * len(index))
        solution = np.linalg.solve(gram, design.T @ target)
        factors, bias = (solution[:-1], float(solution[-1])) if self.biased else (solution, 0.0)
        if user is not None:
            self._set_user(user, factors, bias)
        return factors, bias

    def _set_user(self, user, factors, bias):
        raw = as_id_list(user)
        row = int(self._user_map.lookup(raw, "user")[0])
        if row < 0:
            self._user_map, _ = self._user_map.extended(raw)
            row = len(self._user_map) - 1
            self._grow(row + 1 - len(self.user_bias_), 0, self._checked_params())
        self.user_factors_[row] = factors
        self.user_bias_[row] = bias

    # ------------------------------------------------------------------ prediction
    def _is_fitted(self):
        return hasattr(self, "user_factors_")

    def _check_fitted(self):
        if not hasattr(self, "user_factors_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    @property
    def n_users_(self):
        """Number of users with factors."""
        self._check_fitted()
        return len(self.user_bias_)

    @property
    def n_items_(self):
        """Number of items with factors."""
        self._check_fitted()
        return len(self.item_bias_)

    @property
    def user_ids_(self):
        """Raw user id of each factor row."""
        self._check_fitted()
        return self._user_map.all_raw()

    @property
    def item_ids_(self):
        """Raw item id of each factor row."""
        self._check_fitted()
        return self._item_map.all_raw()

    def user_factors(self, users):
        """Factor rows of users given by raw id (rows of `user_factors_`).

        Parameters
        ----------
        users : id or array-like of ids

        Returns
        -------
        ndarray, shape (n_factors,) for one id, else (len(users), n_factors)

        Raises
        ------
        KeyError
            When an id is unknown to the model.
        """
        return self._rows(self._user_map, self.user_factors_, users, "user")

    def item_factors(self, items):
        """Factor rows of items given by raw id (rows of `item_factors_`); see user_factors."""
        return self._rows(self._item_map, self.item_factors_, items, "item")

    def _rows(self, id_map, factors, raw, kind):
        self._check_fitted()
        index = id_map.lookup(raw, f"{kind}s")
        if (index < 0).any():
            raise KeyError(f"unknown {kind} id {first_unknown(raw, index)!r}")
        rows = factors[index]
        return rows[0] if np.ndim(raw) == 0 else rows

    def _indexed_pairs(self, ratings):
        """(user index, item index, rating) of a rating set, indices into this model (-1 unknown)."""
        users, items, values = ratings.index_arrays()
        return (self._user_map.lookup(ratings.user_ids, "users")[users],
                self._item_map.lookup(ratings.item_ids, "items")[items], values)

    def _predict_indices(self, users, items, n_threads=1):
        out = np.empty(len(users), dtype=np.float64)
        _sgd.predict(self.user_factors_, self.item_factors_, self.user_bias_, self.item_bias_,
                     self.global_mean_, np.ascontiguousarray(users, dtype=np.int64),
                     np.ascontiguousarray(items, dtype=np.int64), out, n_threads)
        return np.clip(out, *self.rating_range_, out=out)

    def predict(self, users, items):
        """Predict ratings for (user, item) pairs.

        Parameters
        ----------
        users, items : array-like of ids, or scalars
            Raw ids (for a model fitted on a scipy.sparse matrix, its row and column
            indices).  Unknown users or items, including ids that held no rating in
            training, fall back to the global mean plus the known bias.

        Returns
        -------
        ndarray of float64 (a float for scalar input), clipped to the training rating range.
        """
        self._check_fitted()
        scalar = np.ndim(users) == 0 and np.ndim(items) == 0
        user_index = self._user_map.lookup(users, "users")
        item_index = self._item_map.lookup(items, "items")
        if user_index.shape != item_index.shape:
            raise ValueError(f"users and items must have the same length, got "
                             f"{len(user_index)} and {len(item_index)}")
        out = self._predict_indices(user_index, item_index, self._thread_count())
        return float(out[0]) if scalar else out

    def _rmse_on(self, pairs, n_threads=1):
        users, items, values = pairs
        error = self._predict_indices(users, items, n_threads) - values
        return float(np.sqrt(np.mean(np.square(error))))

    def score(self, X, metric="rmse"):
        """Error of the predictions on the ratings `X`: RMSE or MAE (lower is better).

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple
            Ratings with the same kind of ids as in fit; unknown users or items get the
            cold-start prediction (global mean plus the known bias).
        metric : {"rmse", "mae"}, default="rmse"
            Root mean squared error or mean absolute error (see :mod:`mfsgd.metrics`).

        Returns
        -------
        float
        """
        self._check_fitted()
        check_choice("metric", metric, SCORES)
        users, items, values = self._indexed_pairs(as_ratings("X", X, copy=False))
        predicted = self._predict_indices(users, items, self._thread_count())
        return getattr(metrics, metric)(values, predicted)

    # ------------------------------------------------------------------ recommendation
    def recommend(self, user, n=10, exclude_seen=True, items=None):
        """The `n` items with the highest predicted rating for `user`.

        See :func:`mfsgd.recommend.recommend`.

        Parameters
        ----------
        user : id
            A user known to the model; an unknown user raises KeyError (no cold start).
        n : int, default=10
        exclude_seen : bool, default=True
            Leave out the items the user rated in training.
        items : array-like of ids, optional
            Rank only these items.

        Returns
        -------
        item_ids : ndarray
            Raw item ids, best first (at most `n`).
        scores : ndarray of float64
            Unclipped predicted ratings of those items.
        """
        return _recommend.recommend(self, user, n, exclude_seen, items)

    def recommend_all(self, users=None, n=10, exclude_seen=True):
        """The `n` best items for each of `users` (default: all); see
        :func:`mfsgd.recommend.recommend_all`.

        Parameters
        ----------
        users : array-like of ids, optional
        n : int, default=10
        exclude_seen : bool, default=True

        Returns
        -------
        item_ids : ndarray, shape (len(users), n)
            Raw item ids; rows with fewer than `n` candidates are padded with -1 (integer
            ids) or "" (string ids).
        scores : ndarray of float64, shape (len(users), n)
            -inf in padded slots.
        """
        return _recommend.recommend_all(self, users, n, exclude_seen)

    def similar_items(self, item, n=10):
        """The `n` items nearest to `item` by cosine similarity of item factors.

        Parameters
        ----------
        item : id
        n : int, default=10

        Returns
        -------
        item_ids : ndarray
            Raw ids, most similar first, never `item` itself.
        similarities : ndarray of float64
        """
        return _recommend.similar_items(self, item, n)

    def similar_users(self, user, n=10):
        """The `n` users nearest to `user` by cosine similarity of user factors.

        Parameters
        ----------
        user : id
        n : int, default=10

        Returns
        -------
        user_ids : ndarray
            Raw ids, most similar first, never `user` itself.
        similarities : ndarray of float64
        """
        return _recommend.similar_users(self, user, n)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save the fitted model to one .npz file at `path` (atomically, no suffix added).

        See :mod:`mfsgd.persistence` for the file's contents; callbacks are not saved.

        Parameters
        ----------
        path : str or os.PathLike
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        MatrixFactorization
            Equal to the saved model, array for array.

        Raises
        ------
        ValueError
            When the file is damaged, altered, not an mfsgd model, or of a newer format.
        """
        return persistence.load(path, cls)


@dataclass
class _PartialEpoch:
    """An epoch in progress: its schedule and seed, the sub-epochs done, their blocks' errors."""

    schedule: np.ndarray
    seed: int
    block_sse: np.ndarray
    done: int = 0
    seconds: float = 0.0

    def copy(self):
        """An independent copy."""
        return replace(self, schedule=self.schedule.copy(), block_sse=self.block_sse.copy())


def _add_note(error, note):
    if hasattr(error, "add_note"):                  # Python >= 3.11
        error.add_note(note)


def _aligned_full(n, value, dtype):
    array = aligned_empty((n,), dtype)
    array.fill(value)
    return array


def _hold_out(train, fraction, rng):
    """Split off a random `fraction` of the training ratings for early stopping.

    Returns the remaining training ratings (IndexedRatings in the same index space) and the
    held-out (user index, item index, rating) triplets."""
    n = len(train)
    n_out = max(1, int(round(n * fraction)))
    if n_out >= n:
        raise ValueError(f"validation_fraction={fraction} leaves no training ratings out of {n}")
    order = rng.permutation(n)
    users, items, values = train.index_arrays()
    held = np.sort(order[:n_out])
    held_pairs = (users[held].astype(np.int64), items[held].astype(np.int64), values[held])
    return take(train, order[n_out:]), held_pairs


def _fingerprint(ratings):
    """Digest of a rating set's CSR arrays and ids, to recognise the same training data."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (ratings.indptr, ratings.indices, ratings.data):
        digest.update(np.ascontiguousarray(array).data)
    if not isinstance(ratings, IndexedRatings):
        for ids in (ratings.user_ids, ratings.item_ids):
            digest.update(np.ascontiguousarray(ids).data)
    digest.update(f"{ratings.n_users},{ratings.n_items}".encode())
    return digest.hexdigest()


def _checked_callbacks(callbacks):
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a list of callables, got "
                        f"{type(callbacks).__name__}") from None
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"callbacks must be callables, got {callback!r}")
    return callbacks
