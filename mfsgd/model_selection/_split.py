"""Splitting rating sets: train_test_split, KFold and PredefinedSplit (all vectorized)."""
import math
import numbers

import numpy as np
import scipy.sparse as sp

from .._estimator import ParamsMixin
from .._validation import check_choice, check_int
from ..data.ratings import Ratings, as_ratings

STRATEGIES = ("random", "user", "time")


def train_test_split(ratings, test_size=0.2, random_state=None, strategy="random"):
    """Split a rating set into a training and a test set.

    Parameters
    ----------
    ratings : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings[, timestamps]) tuple
        Tuples hold raw ids (``Ratings.from_arrays``); a matrix's row and column indices
        become the raw ids (``Ratings.from_sparse``).
    test_size : float in (0, 1) or int, default=0.2
        With "random" and "time": the share of all ratings put in test (rounded up), or their
        number.  With "user": the share of each user's ratings, or their number per user
        (``test_size=1`` is leave-one-out).
    random_state : int, numpy Generator or None
        Seed of the shuffle (and of the tie-breaks of "time").
    strategy : {"random", "user", "time"}, default="random"
        "random": a uniformly random subset of the ratings.
        "user": each user's ratings are split separately.  A user with n ratings puts
        ``test_size * n`` of them in test, rounded down or up at random so that the
        expected share is exactly `test_size` (or ``test_size`` ratings when it is an int),
        but never more than n - 1: every user keeps at least one training rating, and users
        with a single rating stay wholly in train.
        "time": the globally latest ratings by ``ratings.timestamps`` go to test (equal
        timestamps at the boundary are broken at random), so the largest training timestamp
        is at most the smallest test timestamp.

    Returns
    -------
    train, test : mfsgd.Ratings
        Together they hold every rating exactly once; each has compacted ids (only the users
        and items it rates) and keeps the timestamps.

    Raises
    ------
    ValueError
        On a bad `test_size` or `strategy`, when "time" is asked of ratings without
        timestamps, or when either side would be empty.
    """
    ratings = as_ratings("ratings", ratings, copy=False)
    strategy = check_choice("strategy", strategy, STRATEGIES)
    rng = np.random.default_rng(random_state)
    n = len(ratings)
    if strategy == "user":
        test_mask = _user_test_mask(ratings, test_size, rng)
        if not test_mask.any():
            raise ValueError(f"test_size={test_size!r} with strategy='user' puts no rating in "
                             f"test (users need at least two ratings to give one to test)")
        test_positions = np.flatnonzero(test_mask)
        train_positions = np.flatnonzero(~test_mask)
    else:
        n_test = _test_count(test_size, n)
        if strategy == "random":
            order = rng.permutation(n)
        else:
            if ratings.timestamps is None:
                raise ValueError("strategy='time' needs timestamps, and ratings has none "
                                 "(build it with Ratings.from_arrays(..., timestamps=...))")
            order = np.lexsort((rng.random(n), ratings.timestamps))
        train_positions, test_positions = order[:n - n_test], order[n - n_test:]
    return ratings.take(train_positions), ratings.take(test_positions)


def _test_count(test_size, n):
    """Number of test ratings for a global split of `n` ratings; raise naming test_size."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
    else:
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size must be in (0, 1) as a float, got {test_size!r}")
        n_test = math.ceil(test_size * n)
    if not 1 <= n_test <= n - 1:
        raise ValueError(f"test_size={test_size!r} gives {n_test} test ratings out of {n}; "
                         f"both train and test need at least one")
    return n_test


def _user_test_mask(ratings, test_size, rng):
    """Boolean mask (CSR order) of the test ratings of a per-user split."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    counts = np.diff(ratings.indptr)
    if isinstance(test_size, numbers.Integral):
        if test_size < 1:
            raise ValueError(f"test_size must be >= 1 as an int, got {test_size!r}")
        per_user = np.full(len(counts), int(test_size), dtype=np.int64)
    else:
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size must be in (0, 1) as a float, got {test_size!r}")
        share = test_size * counts
        per_user = np.floor(share).astype(np.int64)
        per_user += rng.random(len(counts)) < (share - per_user)
    per_user = np.minimum(per_user, counts - 1)
    # A random rank of every rating within its user: sort by (user, random key).
    user = ratings.user_of_rating()
    order = np.lexsort((rng.random(len(ratings)), user))
    rank = np.empty(len(ratings), dtype=np.int64)
    rank[order] = np.arange(len(ratings)) - ratings.indptr[user[order]]
    return rank < per_user[user]


class KFold(ParamsMixin):
    """K-fold cross-validation over ratings: each rating is tested exactly once.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=True
        Shuffle the ratings before cutting them into folds; otherwise folds are consecutive
        runs of the ratings in user-major (CSR) order.
    random_state : int, numpy Generator or None
        Seed of the shuffle.  With None every call to :meth:`split` draws new folds.
    """

    def __init__(self, n_splits=5, shuffle=True, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, ratings=None):
        """Number of folds.

        Parameters
        ----------
        ratings : ignored
            Accepted for the splitter interface.

        Returns
        -------
        int
        """
        return check_int("n_splits", self.n_splits, 2)

    def split(self, ratings):
        """Yield (train, test) rating sets, one pair per fold.

        The test sets partition the ratings (sizes differ by at most one); each train set is
        the complement of its test set.

        Parameters
        ----------
        ratings : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple

        Yields
        ------
        train, test : mfsgd.Ratings
        """
        ratings = as_ratings("ratings", ratings, copy=False)
        for train_positions, test_positions in self._positions(ratings):
            yield ratings.take(train_positions), ratings.take(test_positions)

    def split_positions(self, ratings):
        """Yield (train positions, test positions) into the ratings' CSR order, per fold.

        Parameters
        ----------
        ratings : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple

        Yields
        ------
        train_positions, test_positions : ndarray of int64, sorted
        """
        yield from self._positions(as_ratings("ratings", ratings, copy=False))

    def _positions(self, ratings):
        n_splits = self.get_n_splits()
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {self.shuffle!r}")
        n = len(ratings)
        if n_splits > n:
            raise ValueError(f"n_splits={n_splits} exceeds the number of ratings ({n})")
        order = np.random.default_rng(self.random_state).permutation(n) if self.shuffle \
            else np.arange(n)
        fold = np.empty(n, dtype=np.int64)
        fold[order] = np.arange(n) * n_splits // n       # sizes differ by at most one
        for k in range(n_splits):
            in_test = fold == k
            yield np.flatnonzero(~in_test), np.flatnonzero(in_test)


class PredefinedSplit:
    """Fixed (train, test) pairs, for example MovieLens 100K's u1.base/u1.test ... u5.

    Parameters
    ----------
    folds : iterable of (train, test) pairs
        Each side a mfsgd.Ratings, a scipy.sparse matrix or a (users, items, ratings) tuple
        (converted to Ratings once, here).
    """

    def __init__(self, folds):
        try:
            pairs = list(folds)
        except TypeError:
            raise TypeError(f"folds must be an iterable of (train, test) pairs, got "
                            f"{type(folds).__name__}") from None
        if not pairs:
            raise ValueError("folds is empty: give at least one (train, test) pair")
        self.folds = []
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"folds[{i}] must be a (train, test) pair, got "
                                f"{type(pair).__name__}"
                                + (f" of length {len(pair)}" if hasattr(pair, "__len__") else ""))
            self.folds.append((as_ratings(f"folds[{i}][0] (train)", pair[0]),
                               as_ratings(f"folds[{i}][1] (test)", pair[1])))

    def __repr__(self):
        return f"PredefinedSplit({len(self.folds)} folds)"

    def get_n_splits(self, ratings=None):
        """Number of folds.

        Parameters
        ----------
        ratings : ignored

        Returns
        -------
        int
        """
        return len(self.folds)

    def split(self, ratings=None):
        """Yield the given (train, test) pairs as rating sets.

        Parameters
        ----------
        ratings : ignored
            The folds carry their own data.

        Yields
        ------
        train, test : mfsgd.Ratings
        """
        yield from self.folds


def check_cv(cv):
    """A splitter whose ``split(ratings)`` yields (train, test) rating sets, for `cv`.

    `cv` is an int (``KFold(cv, shuffle=True, random_state=0)``), an mfsgd splitter, a
    scikit-learn splitter (KFold, ShuffleSplit, ...: its index arrays are positions into the
    ratings' CSR order), another object with ``split`` and ``get_n_splits`` whose
    ``split(ratings)`` yields rating sets or position arrays, or an iterable of (train, test)
    pairs: rating sets (as in PredefinedSplit) or position arrays.
    """
    if isinstance(cv, numbers.Integral) and not isinstance(cv, (bool, np.bool_)):
        return KFold(check_int("cv", cv, 2), shuffle=True, random_state=0)
    if isinstance(cv, (KFold, PredefinedSplit)):
        return cv
    if hasattr(cv, "split") and hasattr(cv, "get_n_splits"):
        return PositionSplitter(cv)
    if hasattr(cv, "__iter__") and not isinstance(cv, (str, bytes, dict)):
        pairs = list(cv)
        if pairs and isinstance(pairs[0], (tuple, list)) and len(pairs[0]) == 2 and \
                isinstance(pairs[0][0], np.ndarray):
            return PositionSplitter(_PositionPairs(pairs))
        return PredefinedSplit(pairs)
    raise TypeError(f"cv must be an int, a splitter (mfsgd's KFold or PredefinedSplit, or a "
                    f"scikit-learn splitter) or an iterable of (train, test) pairs, got {cv!r}")


class PositionSplitter:
    """Any other splitter, as one that yields (train, test) rating sets.

    A scikit-learn splitter is called as ``split(X, y)`` with a placeholder X of one row per
    rating and y the class of each rating's value (the rank of the value among the distinct
    ratings: 0, 1, ...), so that StratifiedKFold stratifies by rating value, half stars
    included, which scikit-learn would take for continuous targets; any other as
    ``split(ratings)``.  Yielded index arrays (or boolean masks) are positions into the
    ratings' CSR order (``Ratings.take``); yielded rating sets pass through.

    Parameters
    ----------
    splitter : object with ``split`` and ``get_n_splits``
    """

    def __init__(self, splitter):
        self.splitter = splitter

    def __repr__(self):
        return f"PositionSplitter({self.splitter!r})"

    def get_n_splits(self, ratings=None):
        """Number of folds, as the wrapped splitter counts them.

        Parameters
        ----------
        ratings : mfsgd.Ratings, optional
            Some splitters (LeaveOneOut) count folds from the data.

        Returns
        -------
        int
        """
        if ratings is None:
            return self.splitter.get_n_splits()
        if _from_scikit_learn(self.splitter):
            return self.splitter.get_n_splits(_placeholder(len(as_ratings("ratings", ratings))))
        return self.splitter.get_n_splits(ratings)

    def split(self, ratings):
        """Yield (train, test) rating sets, one pair per fold of the wrapped splitter.

        Parameters
        ----------
        ratings : mfsgd.Ratings, scipy.sparse matrix, (users, items, ratings) tuple, or None
            None only for a splitter that yields rating sets of its own.

        Yields
        ------
        train, test : mfsgd.Ratings
        """
        if ratings is not None or _from_scikit_learn(self.splitter):
            ratings = as_ratings("ratings", ratings)
        if _from_scikit_learn(self.splitter):
            pairs = _explained(self.splitter.split(_placeholder(len(ratings)),
                                                   _value_classes(ratings.data)), self.splitter)
        else:
            pairs = self.splitter.split(ratings)
        for fold, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"cv={self.splitter!r} yielded {type(pair).__name__} for fold "
                                f"{fold}, not a (train, test) pair")
            yield tuple(_fold_side(ratings, side, f"cv fold {fold} {name}", self.splitter)
                        for side, name in zip(pair, ("train", "test")))


class _PositionPairs:
    """Fixed (train positions, test positions) pairs, as a splitter."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __repr__(self):
        return f"[{len(self.pairs)} (train, test) position pairs]"

    def get_n_splits(self, ratings=None):
        return len(self.pairs)

    def split(self, ratings):
        yield from self.pairs


def _explained(pairs, splitter):
    """The folds of a scikit-learn splitter; its errors say what mfsgd gave it."""
    try:
        yield from pairs
    except (ValueError, TypeError) as error:
        raise type(error)(f"cv={splitter!r} cannot split the ratings: {error} (mfsgd passes "
                          f"it one sample per rating, with the class of its rating value as y and "
                          f"no groups)") \
            from error


def _from_scikit_learn(splitter):
    return type(splitter).__module__.split(".")[0] == "sklearn"


def _value_classes(values):
    """y for a scikit-learn splitter: each rating's value as a class label (its rank among
    the distinct values), which stratified splitters accept whatever the rating scale."""
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def _placeholder(n):
    """X for a scikit-learn splitter: one row per rating, no memory."""
    return np.broadcast_to(np.int8(0), (n, 1))


def _fold_side(ratings, side, name, splitter):
    """One side of a yielded fold as a rating set: rating sets as they are, positions taken."""
    if isinstance(side, Ratings) or sp.issparse(side) or isinstance(side, tuple):
        return as_ratings(name, side)
    if ratings is None:
        raise TypeError(f"{name} from cv={splitter!r} is not a rating set, and there are no "
                        f"ratings to take positions from: pass the ratings")
    positions = np.asarray(side)
    if positions.dtype == bool and positions.shape == (len(ratings),):
        positions = np.flatnonzero(positions)
    if positions.ndim != 1 or positions.dtype.kind not in "iu":
        raise TypeError(f"{name} from cv={splitter!r} must be rating positions (a 1-D integer "
                        f"array or a boolean mask of {len(ratings)}) or a rating set, got "
                        f"{type(side).__name__} of dtype {positions.dtype} and shape "
                        f"{positions.shape}")
    if positions.size == 0:
        raise ValueError(f"{name} from cv={splitter!r} is empty")
    low, high = positions.min(), positions.max()
    if low < 0 or high >= len(ratings):
        raise ValueError(f"{name} from cv={splitter!r} holds position "
                         f"{low if low < 0 else high}, outside the {len(ratings)} ratings")
    if len(np.unique(positions)) != len(positions):
        raise ValueError(f"{name} from cv={splitter!r} names a rating more than once")
    return ratings.take(positions)
