"""Peak memory of fit: at most 1.5 x (rating arrays + factor matrices) for every input type."""
import numpy as np
import pytest
import scipy.sparse as sp

import mfsgd
from mfsgd.data.ratings import _stable_sort


def _unique_pairs(n_ratings, seed=0):
    n_users, n_items = n_ratings // 50, n_ratings // 500
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, n_users * n_items, size=int(n_ratings * 1.02)))
    keys = rng.permutation(keys)[:n_ratings]
    return ((keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32),
            rng.integers(1, 6, size=len(keys)).astype(np.float32), n_users, n_items)


@pytest.mark.parametrize("kind", ["tuple", "scipy", "Ratings"])
def test_fit_peak_memory_within_one_and_a_half_times_ratings_and_factors(kind, fuzz_limits):
    """Traced allocations (tracemalloc) of fit, on one thread and one epoch: the converted
    rating set's values are freed once the layout holds its copy, before the factors exist,
    and building a rating set from a tuple keeps its sort order in int32."""
    n_ratings, k = 400_000, 64
    users, items, ratings, n_users, n_items = _unique_pairs(n_ratings)
    if kind == "tuple":
        X = (users, items, ratings)
    else:
        X = sp.csr_matrix((ratings, (users, items)), shape=(n_users, n_items))
        if kind == "Ratings":
            X = mfsgd.Ratings.from_sparse(X)
    budget = 1.5 * (8 * (n_users + 1) + 8 * n_ratings + 4 * k * (n_users + n_items))
    model = mfsgd.MatrixFactorization(n_factors=k, n_epochs=1, n_threads=1, random_state=0)
    fuzz_limits(model.fit, X, max_bytes=int(budget), seconds=60)
    assert model.n_users_ == n_users and model.n_items_ == n_items


def test_stable_sort_order_is_int32_below_two_to_the_31_ratings():
    key = np.array([5, 3, 5, 1, 3], dtype=np.int64)
    order, keys = _stable_sort(key.copy())
    assert order.dtype == np.int32
    assert order.tolist() == np.argsort(key, kind="stable").tolist()
    assert keys.tolist() == sorted(key.tolist())
