"""mfsgd.Ratings: construction, duplicate policies, id round trips through the estimator."""
import numpy as np
import pytest
import scipy.sparse as sp

import mfsgd
from mfsgd import Ratings


def small_arrays():
    users = np.array([30, 10, 30, 20, 10, 20])
    items = np.array([7, 5, 5, 9, 9, 7])
    ratings = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 3.5])
    return users, items, ratings


def test_from_arrays_builds_sorted_csr_with_both_id_directions():
    users, items, ratings = small_arrays()
    data = Ratings.from_arrays(users, items, ratings)
    assert len(data) == 6 and data.n_users == 3 and data.n_items == 3
    assert list(data.user_ids) == [10, 20, 30] and list(data.item_ids) == [5, 7, 9]
    assert list(data.indptr) == [0, 2, 4, 6]
    assert list(data.indices) == [0, 2, 1, 2, 0, 1]
    assert data.rating_range == (1.0, 5.0)
    assert list(data.user_index([20, 99])) == [1, -1]
    raw_u, raw_i, values = data.to_arrays()
    got = {(u, i): r for u, i, r in zip(raw_u, raw_i, values)}
    assert got == {(u, i): np.float32(r) for u, i, r in zip(users, items, ratings)}


def test_to_coo_matches_the_ratings():
    data = Ratings.from_arrays(*small_arrays())
    coo = data.to_coo()
    assert coo.shape == (3, 3)
    assert coo.toarray()[2, 1] == 1.0  # user 30, item 7


def test_string_ids_and_timestamps_follow_the_ratings():
    data = Ratings.from_arrays(["b", "a", "b"], ["x", "y", "y"], [1, 2, 3], timestamps=[30, 10, 20])
    assert list(data.user_ids) == ["a", "b"]
    raw_u, raw_i, values = data.to_arrays()
    by_pair = {(u, i): t for u, i, t in zip(raw_u, raw_i, data.timestamps)}
    assert by_pair == {("b", "x"): 30, ("a", "y"): 10, ("b", "y"): 20}


def test_duplicates_error_names_a_pair():
    with pytest.raises(ValueError, match=r"user 'u1'.*item 'i1'"):
        Ratings.from_arrays(["u1", "u1", "u2"], ["i1", "i1", "i1"], [1, 2, 3])


def test_duplicate_policies_last_and_mean():
    users, items, values, stamps = [1, 1, 2], [5, 5, 5], [1.0, 4.0, 3.0], [10, 20, 5]
    last = Ratings.from_arrays(users, items, values, stamps, duplicates="last")
    mean = Ratings.from_arrays(users, items, values, stamps, duplicates="mean")
    assert list(last.data) == [4.0, 3.0] and list(last.timestamps) == [20, 5]
    assert list(mean.data) == [2.5, 3.0] and list(mean.timestamps) == [20, 5]
    with pytest.raises(ValueError, match="duplicates"):
        Ratings.from_arrays(users, items, values, duplicates="first")


@pytest.mark.parametrize("bad, message", [
    (dict(users=[1, 2], items=[1], ratings=[1, 2]), "same length"),
    (dict(users=[], items=[], ratings=[]), "empty"),
    (dict(users=[1, 2], items=[1, 2], ratings=[1, np.nan]), "finite"),
    (dict(users=[1.5, 2], items=[1, 2], ratings=[1, 2]), "users"),
    (dict(users=[[1, 2]], items=[[1, 2]], ratings=[[1, 2]]), "one-dimensional"),
])
def test_bad_arrays_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Ratings.from_arrays(**bad)


def test_caller_arrays_are_untouched_and_the_set_is_read_only():
    users, items, ratings = small_arrays()
    copies = users.copy(), items.copy(), ratings.copy()
    data = Ratings.from_arrays(users, items, ratings)
    for before, after in zip(copies, (users, items, ratings)):
        np.testing.assert_array_equal(before, after)
        assert after.flags.writeable
    with pytest.raises(ValueError):
        data.data[0] = 9


def test_from_dataframe_with_datetime_timestamps():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"u": ["a", "b"], "m": [3, 4], "stars": [4.0, 5.0],
                       "when": pd.to_datetime(["2020-01-01", "2020-01-02"])})
    data = Ratings.from_dataframe(df, user="u", item="m", rating="stars", timestamp="when")
    assert list(data.user_ids) == ["a", "b"]
    assert int(data.timestamps[1] - data.timestamps[0]) == 86400
    with pytest.raises(ValueError, match="rating='rating'"):
        Ratings.from_dataframe(df, user="u", item="m")


def test_from_sparse_keeps_indices_as_ids():
    matrix = sp.random(20, 10, density=0.3, random_state=0, format="csr") + 0
    data = Ratings.from_sparse(matrix)
    assert data.n_users == 20 and data.n_items == 10 and len(data) == matrix.nnz
    np.testing.assert_array_equal(data.to_coo().toarray(), matrix.toarray().astype(np.float32))
    with pytest.raises(TypeError, match="matrix"):
        Ratings.from_sparse(np.eye(3))


def test_take_drops_ids_left_without_ratings():
    data = Ratings.from_arrays(*small_arrays())
    part = data.take([0, 1])  # both ratings of user 10
    assert list(part.user_ids) == [10] and list(part.item_ids) == [5, 9]
    assert len(part) == 2


@pytest.mark.parametrize("kind", ["int", "str"])
def test_raw_ids_round_trip_through_the_model(kind):
    users, items, ratings = mfsgd.make_synthetic(n_users=200, n_items=80, n_ratings=6000, random_state=1)
    if kind == "str":
        raw_users = np.char.add("user-", users.astype(str))
        raw_items = np.char.add("item-", items.astype(str))
    else:
        raw_users, raw_items = users * 7 + 1000, items * 3 + 5
    data = Ratings.from_arrays(raw_users, raw_items, ratings)
    model = mfsgd.MatrixFactorization(n_factors=4, n_epochs=5, random_state=0).fit(data)
    indexed = mfsgd.MatrixFactorization(n_factors=4, n_epochs=5, random_state=0).fit(
        (users, items, ratings))
    np.testing.assert_allclose(model.score(data), indexed.score((users, items, ratings)), rtol=0.05)
    predictions = model.predict(raw_users[:50], raw_items[:50])
    assert predictions.shape == (50,)
    assert set(model.user_ids_) == set(raw_users)
    np.testing.assert_array_equal(model.user_factors(raw_users[0]),
                                  model.user_factors_[list(model.user_ids_).index(raw_users[0])])
    unknown = "nobody" if kind == "str" else -12345
    fallback = model.predict([unknown], [raw_items[0]])[0]
    item_row = list(model.item_ids_).index(raw_items[0])
    assert fallback == pytest.approx(np.clip(model.global_mean_ + model.item_bias_[item_row],
                                             *model.rating_range_))
