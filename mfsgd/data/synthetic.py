"""A built-in synthetic rating set: low rank plus noise, with realistic popularity skew."""
import numpy as np


def make_synthetic(n_users=1000, n_items=500, n_ratings=150_000, rank=6, noise=0.5,
                   mean=3.5, signal_std=0.8, popularity=1.1, random_state=0):
    """Generate ratings r_ui = mean + b_u + b_i + p_u . q_i + noise for random (user, item) pairs.

    Items are drawn with Zipf-like popularity (item of rank j has weight (j + 1) ** -popularity)
    and users with a milder skew, so a few items and users hold many ratings, as in real data.
    Pairs are unique; ratings are real-valued (not rounded) so `noise` is the exact noise floor.

    Parameters
    ----------
    n_users, n_items : int
        Matrix shape.
    n_ratings : int
        Number of distinct (user, item) pairs drawn (fewer if the matrix is too small).
    rank : int
        Rank of the true factor model.
    noise : float
        Standard deviation of the Gaussian noise: the best achievable RMSE.
    mean : float
        Global mean.
    signal_std : float
        Standard deviation of the interaction term p_u . q_i; the biases have half of it.
    popularity : float
        Zipf exponent of item popularity (0 = uniform).
    random_state : int or numpy Generator
        Seed; the same seed always gives the same ratings.

    Returns
    -------
    users, items : ndarray of int32
        Indices of each rating.
    ratings : ndarray of float32
    """
    if n_ratings > n_users * n_items:
        raise ValueError(f"n_ratings={n_ratings} exceeds n_users * n_items = {n_users * n_items}")
    rng = np.random.default_rng(random_state)
    item_weight = (np.arange(n_items) + 1.0) ** -popularity
    user_weight = (np.arange(n_users) + 1.0) ** -(popularity / 3)
    item_of_rank = rng.permutation(n_items)
    user_of_rank = rng.permutation(n_users)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_ratings:
        need = int((n_ratings - len(keys)) * 1.3) + 16
        u = user_of_rank[rng.choice(n_users, size=need, p=user_weight / user_weight.sum())]
        i = item_of_rank[rng.choice(n_items, size=need, p=item_weight / item_weight.sum())]
        keys = _sorted_unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    keys = rng.permutation(keys)[:n_ratings]
    users, items = (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32)
    scale = np.sqrt(signal_std / np.sqrt(rank))
    P = rng.normal(0.0, scale, (n_users, rank))
    Q = rng.normal(0.0, scale, (n_items, rank))
    user_bias = rng.normal(0.0, signal_std / 2, n_users)
    item_bias = rng.normal(0.0, signal_std / 2, n_items)
    signal = mean + user_bias[users] + item_bias[items] + np.einsum("ij,ij->i", P[users], Q[items])
    ratings = signal + rng.normal(0.0, noise, n_ratings)
    return users, items, ratings.astype(np.float32)


def _sorted_unique(values):
    """``np.unique(values)`` for int64 keys by a radix sort: numpy's hash-based unique is
    several times slower on these arrays, and this loop calls it once per round."""
    values = np.sort(values, kind="stable")
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]
