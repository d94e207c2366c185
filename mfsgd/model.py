"""The estimator: parameters, input checks, the epoch schedule, history, predict and score."""
import os
import sys
import time
import warnings

import numpy as np

from . import _sgd
from ._base import ParamsMixin
from ._layout import auto_n_blocks, build_layout, epoch_schedule
from ._validation import (as_training_data, check_choice, check_dtype, check_float, check_int)

SCHEDULES = ("constant", "inverse", "adagrad")


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became infinite or NaN."""


class NotFittedError(ValueError, AttributeError):
    """The model was used before ``fit``."""


class MatrixFactorization(ParamsMixin):
    """Matrix factorization trained by stochastic gradient descent.

    Predicts r_ui = p_u . q_i, plus mu + b_u + b_i when `biased`, and minimizes, over the known
    ratings, sum (r_ui - r_ui_hat)^2 + regularization (|p_u|^2 + |q_i|^2)
    + bias_regularization (b_u^2 + b_i^2) by SGD, one rating at a time.

    The defaults were chosen by a grid search on MovieLens 100K's u1 split (RMSE 0.9175 on
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
        "inverse": alpha_t = alpha / (1 + learning_rate_decay * t) at epoch t;
        "adagrad": per-row adaptive steps alpha / sqrt(G), G the accumulated mean squared
        gradient of the row (as in LIBMF); biases keep the plain step.
    learning_rate_decay : float, default=0.1
        Decay of the "inverse" schedule.
    non_negative : bool, default=False
        Keep factors >= 0 (projected SGD).
    n_blocks : int or "auto", default="auto"
        Row/column blocks of the stratified schedule (1 = plain serial SGD over users in
        random order). Results depend on it, not on the thread count.
    n_threads : int or None, default=None
        OpenMP threads; None uses all cores.
    random_state : int, numpy Generator or None
        Seed of the initial factors and of the visiting order.
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the factors.
    verbose : bool, default=False
        Print one line per epoch.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray, shape (n_users, k), (n_items, k)
    user_bias_, item_bias_ : ndarray (zeros when not biased)
    global_mean_ : float (0 when not biased)
    history_ : list of dict
        Per epoch: epoch, learning_rate, train_rmse, valid_rmse (with validation data),
        objective, seconds.
    """

    def __init__(self, n_factors=100, n_epochs=60, learning_rate=0.007, regularization=0.08,
                 bias_regularization=None, biased=True, init_std=0.01,
                 learning_rate_schedule="constant", learning_rate_decay=0.1, non_negative=False,
                 n_blocks="auto", n_threads=None, random_state=None, dtype=np.float32,
                 verbose=False):
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
        self.n_blocks = n_blocks
        self.n_threads = n_threads
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose

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
        }
        params["bias_regularization"] = (
            params["regularization"] if self.bias_regularization is None
            else check_float("bias_regularization", self.bias_regularization, minimum=0.0))
        for name in ("biased", "non_negative", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.n_blocks != "auto":
            check_int("n_blocks", self.n_blocks, 1)
        params["n_threads"] = self._thread_count()
        return params

    def _thread_count(self):
        if self.n_threads is None:
            return os.cpu_count() or 1
        return check_int("n_threads", self.n_threads, 1)

    # ------------------------------------------------------------------ training
    def fit(self, X, validation=None):
        """Train the model on `X` from fresh random factors.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix (rows = users, columns = items) or tuple
            The training ratings; a tuple is (user indices, item indices, ratings).
        validation : same types as `X`, optional
            Ratings whose RMSE is recorded in `history_` after every epoch.

        Returns
        -------
        self
        """
        params = self._checked_params()
        train = as_training_data("X", X)
        valid = None if validation is None else as_training_data("validation", validation)
        self._warn_if_no_openmp(params["n_threads"])
        rng = np.random.default_rng(self.random_state)
        self._init_state(train, params, rng)
        if valid is not None:
            valid = self._indexed_pairs(valid)
        self.history_ = []
        try:
            self._run_epochs(params, params["n_epochs"], valid)
        except DivergenceError:
            self._forget_fit()
            raise
        return self

    def _warn_if_no_openmp(self, n_threads):
        if n_threads > 1 and not _sgd.HAVE_OPENMP and self.n_threads is not None:
            warnings.warn("mfsgd was built without OpenMP; training uses one thread",
                          RuntimeWarning, stacklevel=3)

    def _init_state(self, train, params, rng):
        k, dtype = params["n_factors"], params["dtype"]
        self.user_ids_ = _id_map(train.user_ids, train)
        self.item_ids_ = _id_map(train.item_ids, train)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.rating_range_ = train.rating_range
        self.global_mean_ = float(np.mean(train.data, dtype=np.float64)) if self.biased else 0.0
        self.user_factors_ = self._initial_factors(rng, train.n_users, k, dtype, params)
        self.item_factors_ = self._initial_factors(rng, train.n_items, k, dtype, params)
        self.user_bias_ = np.zeros(train.n_users, dtype=dtype)
        self.item_bias_ = np.zeros(train.n_items, dtype=dtype)
        adagrad = params["schedule"] == "adagrad"
        self._user_grad_sq = np.ones(train.n_users if adagrad else 0, dtype=dtype)
        self._item_grad_sq = np.ones(train.n_items if adagrad else 0, dtype=dtype)
        n_blocks = (auto_n_blocks(train.n_users, train.n_items, k, np.dtype(dtype).itemsize)
                    if self.n_blocks == "auto" else min(self.n_blocks, train.n_users, train.n_items))
        self._layout = build_layout(train, n_blocks, rng)
        self._user_counts = np.diff(train.indptr).astype(np.float64)
        self._item_counts = np.bincount(train.indices, minlength=train.n_items).astype(np.float64)
        self._n_train = len(train)
        self._rng = rng
        self._epochs_done = 0

    def _initial_factors(self, rng, n, k, dtype, params):
        factors = rng.normal(0.0, params["init_std"], size=(n, k)).astype(dtype)
        return np.abs(factors) if self.non_negative else factors

    def _flags(self, params):
        return ((_sgd.FLAG_BIASED if self.biased else 0)
                | (_sgd.FLAG_ADAGRAD if params["schedule"] == "adagrad" else 0)
                | (_sgd.FLAG_NONNEG if self.non_negative else 0))

    def _epoch_learning_rate(self, params, epoch):
        if params["schedule"] == "inverse":
            return params["learning_rate"] / (1.0 + params["decay"] * epoch)
        return params["learning_rate"]

    def _run_epochs(self, params, n_epochs, valid):
        layout = self._layout
        flags = self._flags(params)
        if self.verbose:
            print(_table_header(valid is not None), file=sys.stdout, flush=True)
        for _ in range(n_epochs):
            epoch = self._epochs_done
            lr = self._epoch_learning_rate(params, epoch)
            schedule = epoch_schedule(layout.n_blocks, self._rng)
            seed = int(self._rng.integers(0, 2**63))
            start = time.perf_counter()
            sse = _sgd.sgd_epoch(
                self.user_factors_, self.item_factors_, self.user_bias_, self.item_bias_,
                self._user_grad_sq, self._item_grad_sq, layout.block_ptr, layout.run_user,
                layout.run_ptr, layout.items, layout.ratings, schedule, layout.order,
                layout.block_sse, self.global_mean_, lr, params["regularization"],
                params["bias_regularization"], flags, seed, params["n_threads"])
            seconds = time.perf_counter() - start
            self._check_finite(sse, lr, epoch)
            record = {"epoch": epoch + 1, "learning_rate": lr,
                      "train_rmse": float(np.sqrt(sse / self._n_train))}
            if valid is not None:
                record["valid_rmse"] = self._rmse_on(valid, params["n_threads"])
            record["objective"] = sse + self._penalty(params)
            record["seconds"] = seconds
            self.history_.append(record)
            self._epochs_done += 1
            if self.verbose:
                print(_table_row(record), file=sys.stdout, flush=True)

    def _check_finite(self, sse, lr, epoch):
        if np.isfinite(sse) and np.isfinite(self.user_factors_).all() and \
                np.isfinite(self.item_factors_).all():
            return
        raise DivergenceError(
            f"training diverged at epoch {epoch + 1}: the squared error became {sse!r} with "
            f"learning_rate={lr:g}; use a smaller learning_rate (e.g. {lr / 10:g})")

    def _penalty(self, params):
        """Regularization part of the objective: each rating penalizes its own user and item."""
        reg, bias_reg = params["regularization"], params["bias_regularization"]
        user_sq = np.einsum("ij,ij->i", self.user_factors_, self.user_factors_, dtype=np.float64)
        item_sq = np.einsum("ij,ij->i", self.item_factors_, self.item_factors_, dtype=np.float64)
        penalty = reg * (self._user_counts @ user_sq + self._item_counts @ item_sq)
        if self.biased:
            penalty += bias_reg * (self._user_counts @ np.square(self.user_bias_, dtype=np.float64)
                                   + self._item_counts @ np.square(self.item_bias_, dtype=np.float64))
        return float(penalty)

    def _forget_fit(self):
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)
        for name in ("_layout", "_rng", "_user_grad_sq", "_item_grad_sq"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self):
        if not hasattr(self, "user_factors_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _indexed_pairs(self, ratings):
        """(user index, item index, rating) of a rating set, indices into this model (-1 unknown)."""
        users, items, values = ratings.to_coo()
        user_ids = np.asarray(ratings.user_ids)[users]
        item_ids = np.asarray(ratings.item_ids)[items]
        return (self._lookup(self.user_ids_, user_ids, self.n_users_, "users"),
                self._lookup(self.item_ids_, item_ids, self.n_items_, "items"), values)

    @staticmethod
    def _lookup(id_map, raw, n, name):
        raw = np.asarray(raw)
        if raw.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {raw.shape}")
        if id_map is None:
            if raw.dtype.kind == "f" and np.isfinite(raw).all() and (raw == np.round(raw)).all():
                raw = raw.astype(np.int64)
            if raw.size and raw.dtype.kind not in "iu":
                raise TypeError(f"{name} must be integer indices for a model fitted on indices, "
                                f"got dtype {raw.dtype}")
            index = raw.astype(np.int64)
            return np.where((index >= 0) & (index < n), index, -1)
        try:
            pos = np.searchsorted(id_map, raw)
        except TypeError:
            raise TypeError(f"{name} ids of dtype {raw.dtype} cannot be compared with the "
                            f"model's ids of dtype {id_map.dtype}") from None
        pos = np.minimum(pos, len(id_map) - 1)
        return np.where(id_map[pos] == raw, pos, -1).astype(np.int64)

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
            Raw ids when the model was fitted on a Ratings, indices otherwise. Unknown users
            or items fall back to the global mean plus the known bias.

        Returns
        -------
        ndarray of float64 (a float for scalar input), clipped to the training rating range.
        """
        self._check_fitted()
        scalar = np.ndim(users) == 0 and np.ndim(items) == 0
        users, items = np.atleast_1d(users), np.atleast_1d(items)
        if users.shape != items.shape:
            raise ValueError(f"users and items must have the same length, got {users.shape[0]} "
                             f"and {items.shape[0]}")
        user_index = self._lookup(self.user_ids_, users, self.n_users_, "users")
        item_index = self._lookup(self.item_ids_, items, self.n_items_, "items")
        out = self._predict_indices(user_index, item_index, self._thread_count())
        return float(out[0]) if scalar else out

    def _rmse_on(self, pairs, n_threads=1):
        users, items, values = pairs
        error = self._predict_indices(users, items, n_threads) - values
        return float(np.sqrt(np.mean(np.square(error))))

    def score(self, X):
        """Root mean squared error of the predictions on the ratings `X` (same types as fit)."""
        self._check_fitted()
        return self._rmse_on(self._indexed_pairs(as_training_data("X", X)), self._thread_count())


def _id_map(ids, ratings):
    """Sorted raw ids of a Ratings, or None when the ids are the indices themselves."""
    if type(ratings).__name__ == "IndexedRatings":
        return None
    return np.asarray(ids)


def _table_header(with_valid):
    return ("epoch  train_rmse" + ("  valid_rmse" if with_valid else "")
            + "       objective  seconds")


def _table_row(record):
    valid = f"  {record['valid_rmse']:10.4f}" if "valid_rmse" in record else ""
    return (f"{record['epoch']:5d}  {record['train_rmse']:10.4f}{valid}"
            f"  {record['objective']:14.6g}  {record['seconds']:7.3f}")
