"""MatrixFactorization: biased matrix factorization trained by SGD (parameters and its math)."""
import numpy as np

from .._kernels import _sgd
from .._validation import as_rating_array
from ..training.layout import aligned_copy, aligned_empty, aligned_full, kernel_rows
from ._base import FactorModel
from ._sgd_params import LEARNING_RATE_SCHEDULES, check_sgd_params  # noqa: F401 (re-export)


class MatrixFactorization(FactorModel):
    """Matrix factorization trained by stochastic gradient descent.

    Predicts r_ui = p_u . q_i, plus mu + b_u + b_i when `biased`, and minimizes, over the known
    ratings, sum (r_ui - r_ui_hat)^2 + regularization (|p_u|^2 + |q_i|^2)
    + bias_regularization (b_u^2 + b_i^2) by SGD, one rating at a time.

    The defaults were chosen by a grid search on MovieLens 100K (see the README).

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
        Standard deviation of the normal initial factors; small starts generalize better.
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
        ``mfsgd.training.layout.auto_n_blocks``). Results depend on it, not on the thread
        count.
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
    fit_state_ : FitState
        Everything the model learned, in one object (see :mod:`mfsgd.training.state`).
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

    def checked_params(self):
        """The parameters, checked and resolved (see :meth:`FactorModel.checked_params`).

        Returns
        -------
        dict
            Every numeric parameter as a Python number, ``bias_regularization`` resolved,
            ``dtype`` as np.float32 or np.float64, ``callbacks`` as a list and ``n_threads``
            as an int.

        Raises
        ------
        TypeError, ValueError
            Naming the first bad parameter.
        """
        return check_sgd_params(self)

    # ------------------------------------------------------------------ hooks of FactorModel
    def _initial_arrays(self, rng, n_users, n_items, params):
        k, dtype = params["n_factors"], params["dtype"]
        adagrad = params["learning_rate_schedule"] == "adagrad"
        return {"user_factors": self._initial_factors(rng, n_users, k, dtype, params),
                "item_factors": self._initial_factors(rng, n_items, k, dtype, params),
                "user_bias": aligned_full(n_users, 0, dtype),
                "item_bias": aligned_full(n_items, 0, dtype),
                "user_grad_sq": aligned_full(n_users if adagrad else 0, 1, dtype),
                "item_grad_sq": aligned_full(n_items if adagrad else 0, 1, dtype)}

    @staticmethod
    def _initial_factors(rng, n, k, dtype, params):
        factors = aligned_empty((n, k), dtype)
        rng.standard_normal(out=factors, dtype=dtype)
        factors *= np.dtype(dtype).type(params["init_std"])
        return np.abs(factors, out=factors) if params.get("non_negative") else factors

    def _kernel(self, params):
        return MFKernel(params)

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
        state = self.fit_state_
        if isinstance(user_ratings, dict):
            items, values = list(user_ratings.keys()), list(user_ratings.values())
        elif isinstance(user_ratings, tuple) and len(user_ratings) == 2:
            items, values = user_ratings
        else:
            raise TypeError("user_ratings must be an (items, ratings) tuple or a dict "
                            f"{{item: rating}}, got {type(user_ratings).__name__}")
        values = as_rating_array("user_ratings ratings", np.atleast_1d(values)).astype(np.float64)
        index = state.item_map.lookup(items, "user_ratings items")
        if len(index) != len(values):
            raise ValueError(f"user_ratings: {len(index)} items but {len(values)} ratings")
        known = index >= 0
        if not known.any():
            raise ValueError("user_ratings holds no item known to the model")
        index, values = index[known], values[known]
        params = self.checked_params()
        design = state.item_factors[index].astype(np.float64)
        target = values - (state.global_mean + state.item_bias[index] if self.biased else 0.0)
        penalty = np.full(design.shape[1], params["regularization"])
        if self.biased:
            design = np.hstack([design, np.ones((len(index), 1))])
            penalty = np.append(penalty, params["bias_regularization"])
        gram = design.T @ design + np.diag(penalty * len(index))
        solution = np.linalg.solve(gram, design.T @ target)
        factors, bias = (solution[:-1], float(solution[-1])) if self.biased else (solution, 0.0)
        if user is not None:
            self._add_user(user, factors, bias)
        return factors, bias


class MFKernel:
    """MatrixFactorization's math for the epoch loop (see :mod:`mfsgd.training.loop`).

    The SGD kernel is :func:`mfsgd._kernels._sgd.sgd_epoch`, on factor rows padded to whole
    cache lines (:func:`mfsgd.training.layout.kernel_rows`) while a training call runs.

    Parameters
    ----------
    params : dict
        The model's checked parameters.
    """

    def __init__(self, params):
        self.params = params
        self.flags = ((_sgd.FLAG_BIASED if params["biased"] else 0)
                      | (_sgd.FLAG_ADAGRAD if params["learning_rate_schedule"] == "adagrad"
                         else 0)
                      | (_sgd.FLAG_NONNEG if params["non_negative"] else 0))
        self.rows = None

    def learning_rate(self, epoch):
        """The step size of epoch `epoch` (0-based) under the learning-rate schedule."""
        if self.params["learning_rate_schedule"] == "inverse":
            return self.params["learning_rate"] / (1.0 + self.params["learning_rate_decay"]
                                                   * epoch)
        return self.params["learning_rate"]

    def open(self, state):
        """Pad the factor rows and align the other arrays for the kernel."""
        k = state.n_factors
        self.rows = kernel_rows(state.user_factors), kernel_rows(state.item_factors)
        state.user_factors, state.item_factors = self.rows[0][:, :k], self.rows[1][:, :k]
        for name in ("user_bias", "item_bias", "user_grad_sq", "item_grad_sq"):
            setattr(state, name, aligned_copy(getattr(state, name)))
        if self.params["non_negative"]:
            np.maximum(state.user_factors, 0, out=state.user_factors)
            np.maximum(state.item_factors, 0, out=state.item_factors)

    def run(self, state, blocks, lr, seed):
        """Run the sub-epochs of `blocks` on the state's layout; every block's squared error."""
        layout, params = state.layout, self.params
        _sgd.sgd_epoch(*self.rows, state.user_bias, state.item_bias, state.user_grad_sq,
                       state.item_grad_sq, layout.block_ptr, layout.run_user, layout.run_ptr,
                       layout.items, layout.ratings, blocks, layout.order, layout.block_sse,
                       state.global_mean, lr, params["regularization"],
                       params["bias_regularization"], self.flags, seed, params["n_threads"],
                       state.n_factors, layout.block_seconds, None, layout.block_cpu_seconds)
        return layout.block_sse

    def run_block(self, block, arrays, index, n_blocks, global_mean, n_factors, lr, seed):
        """Run one block of an epoch alone: the updates of its turn in :meth:`run`.

        This is a distributed backend's task: the block's ratings laid out alone
        (:func:`mfsgd.training.layout.lay_out_block`) and the arrays of its users' and
        items' rows only, updated in place.

        Parameters
        ----------
        block : BlockLayout
            One block, its users and items numbered as rows of `arrays`.
        arrays : tuple of ndarray
            (user rows, item rows, user biases, item biases, user adagrad sums, item adagrad
            sums) of the block's users and items; the factor rows as
            :func:`mfsgd.training.layout.kernel_rows` gives them, the sums empty without
            adagrad.
        index : int
            The block's index in the whole layout (row block * n_blocks + column block),
            which seeds its visiting order.
        n_blocks : int
        global_mean : float
        n_factors : int
        lr : float
        seed : int
            The epoch's kernel seed.

        Returns
        -------
        float
            The block's squared error.
        """
        block_ptr = np.zeros(n_blocks * n_blocks + 1, dtype=np.int64)
        block_ptr[index + 1:] = len(block.run_user)
        block_sse = np.zeros(n_blocks * n_blocks)
        return _sgd.sgd_epoch(*arrays, block_ptr, block.run_user, block.run_ptr, block.items,
                              block.ratings, np.array([[index]], dtype=np.int32), block.order,
                              block_sse, global_mean, lr, self.params["regularization"],
                              self.params["bias_regularization"], self.flags, seed, 1,
                              n_factors)

    def close(self, state):
        """Return plain C-contiguous factor arrays."""
        state.user_factors = np.ascontiguousarray(state.user_factors)
        state.item_factors = np.ascontiguousarray(state.item_factors)
        self.rows = None

    def penalty(self, state):
        """Regularization part of the objective: each rating penalizes its own user and item.

        Written with einsum, never BLAS (``@``/``np.dot``): OpenBLAS worker threads busy-wait
        after a call and would take the cores from the next epoch's OpenMP threads."""
        reg, bias_reg = self.params["regularization"], self.params["bias_regularization"]
        user_sq = np.einsum("ij,ij->i", state.user_factors, state.user_factors).astype(np.float64)
        item_sq = np.einsum("ij,ij->i", state.item_factors, state.item_factors).astype(np.float64)
        penalty = reg * (np.einsum("i,i->", state.user_counts, user_sq)
                         + np.einsum("i,i->", state.item_counts, item_sq))
        if self.params["biased"]:
            user_b = state.user_bias.astype(np.float64)
            item_b = state.item_bias.astype(np.float64)
            penalty += bias_reg * (np.einsum("i,i,i->", state.user_counts, user_b, user_b)
                                   + np.einsum("i,i,i->", state.item_counts, item_b, item_b))
        return float(penalty)

    def finite(self, state):
        """Always True: the penalty covers every array SGD updates."""
        return True

    def publish(self, state):
        """Nothing to do: ``predict`` reads the arrays SGD updates."""
