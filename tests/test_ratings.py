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
    with pytest.raises(ValueError, match="pass rating="):
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


# ---------------------------------------------------------------- one converter, raw ids
def test_one_converter_reads_a_tuple_as_raw_ids_everywhere(string_id_ratings):
    """fit, score, metrics and the splitters read a tuple as Ratings.from_arrays does."""
    (users, items, values), ratings = string_id_ratings
    params = dict(n_factors=4, n_epochs=3, random_state=0, n_threads=1)
    from_tuple = mfsgd.MatrixFactorization(**params).fit((users, items, values))
    from_ratings = mfsgd.MatrixFactorization(**params).fit(ratings)
    np.testing.assert_array_equal(from_tuple.user_factors_, from_ratings.user_factors_)
    np.testing.assert_array_equal(from_tuple.user_ids_, ratings.user_ids)
    assert from_tuple.score((users, items, values)) == from_ratings.score(ratings)
    assert (mfsgd.metrics.precision_at_k(from_tuple, (users, items, values), k=5)
            == mfsgd.metrics.precision_at_k(from_tuple, ratings, k=5))
    train, test = mfsgd.model_selection.train_test_split((users, items, values), random_state=0)
    assert set(train.user_ids) | set(test.user_ids) == set(users)


def test_as_ratings_refuses_other_types_naming_the_argument():
    from mfsgd.ratings import as_ratings
    with pytest.raises(TypeError, match=r"validation must be .*tuple of raw ids, got list"):
        as_ratings("validation", [[0], [1], [2.0]])
    with pytest.raises(ValueError, match=r"X\[2\] \(ratings\) must be finite, found nan at position 1"):
        as_ratings("X", ([0, 1], [0, 1], [1.0, np.nan]))


def test_sparse_ids_are_the_rows_and_columns_that_hold_ratings():
    matrix = sp.coo_matrix((np.array([5.0, 4.0, 3.0, 0.0]), (np.array([0, 0, 3, 4]),
                                                              np.array([1, 4, 4, 0]))),
                           shape=(6, 7))
    for form in (matrix, matrix.tocsr(), matrix.tocsc(), matrix.todok(), matrix.tolil()):
        data = Ratings.from_sparse(form)
        assert data.user_ids.tolist() == [0, 3, 4] and data.item_ids.tolist() == [0, 1, 4]
        raw_u, raw_i, values = data.to_arrays()
        assert sorted(zip(raw_u.tolist(), raw_i.tolist(), values.tolist())) == \
            [(0, 1, 5.0), (0, 4, 4.0), (3, 4, 3.0), (4, 0, 0.0)]


def test_sparse_shapes_beyond_int32_keep_exact_ids(fuzz_limits):
    # Only formats whose size follows the entries: a CSR with 2**31 rows would itself hold a
    # 16 GiB indptr.
    cols = np.array([0, 2**32 + 5, 2**33 - 1])
    rows = np.array([0, 2**31 + 1, 2**31 + 1])
    values = np.array([1.0, 2.0, 3.0])
    wide = sp.coo_matrix((values, (rows, cols)), shape=(2**31 + 2, 2**33))
    for form in (wide, sp.csr_matrix((values, (rows % 3, cols)), shape=(3, 2**33)),
                 sp.csc_matrix((values, (rows, cols % 3)), shape=(2**31 + 2, 3))):
        data = fuzz_limits(Ratings.from_sparse, form, max_bytes=1 << 20)
        assert data.item_ids.tolist() == np.unique(form.tocoo().col).tolist()
        assert data.user_ids.tolist() == np.unique(form.tocoo().row).tolist()
    model = fuzz_limits(mfsgd.MatrixFactorization(n_factors=2, n_epochs=2, random_state=0).fit,
                        wide, max_bytes=1 << 20)
    assert model.item_ids_.tolist() == cols.tolist()
    assert model.user_ids_.tolist() == [0, 2**31 + 1]


def test_from_sparse_copies_and_the_converter_may_share_a_whole_canonical_csr():
    from mfsgd.ratings import as_ratings
    matrix = sp.random(30, 12, density=0.5, random_state=1, format="csr", dtype=np.float32)
    assert (np.diff(matrix.indptr) > 0).all() and len(np.unique(matrix.indices)) == 12
    shared = as_ratings("X", matrix, copy=False)
    assert np.shares_memory(shared.indices, matrix.indices)
    assert np.shares_memory(shared.data, matrix.data)
    copied = Ratings.from_sparse(matrix)
    assert not np.shares_memory(copied.indices, matrix.indices)
    assert not np.shares_memory(copied.data, matrix.data)
    np.testing.assert_array_equal(copied.data, shared.data)


def test_malformed_sparse_matrices_are_refused_without_changing_them():
    matrix = sp.csr_matrix((np.array([1.0, 2.0]), np.array([0, 9]), np.array([0, 1, 2])),
                           shape=(2, 3))          # column 9 outside the shape
    with pytest.raises(ValueError, match="outside its shape"):
        Ratings.from_sparse(matrix)
    broken = sp.csr_matrix((np.array([1.0, 2.0]), np.array([0, 1]), np.array([0, 1, 2])),
                           shape=(2, 3))
    broken.indptr = np.array([0, 5, 2], dtype=broken.indptr.dtype)
    with pytest.raises(ValueError, match="indptr"):
        Ratings.from_sparse(broken)
    with pytest.raises(ValueError, match="no ratings"):
        Ratings.from_sparse(sp.csr_matrix((3, 3)))
    with pytest.raises(ValueError, match=r"matrix stores \(row 0, column 1\) more than once"):
        Ratings.from_sparse(sp.coo_matrix(([1.0, 2.0], ([0, 0], [1, 1]))))


# ---------------------------------------------------------------- exact or an error
@pytest.mark.parametrize("users, message", [
    (np.array([1e20, 5.0]), r"users holds the float 1e\+20 at position 0, beyond the int64"),
    (np.array([-1e19, 5.0]), r"users holds the float -1e\+19 at position 0"),
    (np.array([1.0, np.nan]), r"users must hold integer or string ids, found nan at position 1"),
    (np.array([3.0, 2.5]), r"found 2\.5 at position 1"),
    ([5, 2**64], r"users holds 18446744073709551616 at position 1"),
    ([-1, 2**63], r"users holds 9223372036854775808 at position 1"),
])
def test_ids_that_are_not_exact_integers_are_refused(users, message):
    with pytest.raises(ValueError, match=message):
        Ratings.from_arrays(users, [1, 2], [3.0, 4.0])


def test_uint64_ids_at_and_beyond_2_63_stay_exact():
    users = np.array([2**63, 2**63 + 1, 5, 2**64 - 1], dtype=np.uint64)
    data = Ratings.from_arrays(users, [1, 2, 3, 4], [3.0, 4.0, 5.0, 1.0])
    assert data.user_ids.dtype == np.uint64
    assert data.user_ids.tolist() == [5, 2**63, 2**63 + 1, 2**64 - 1]
    assert data.user_index([2**63 + 1, 2**63, -1, 5]).tolist() == [2, 1, -1, 0]
    from_list = Ratings.from_arrays([2**63, 2**63 + 1, 5, 2**64 - 1], [1, 2, 3, 4],
                                    [3.0, 4.0, 5.0, 1.0])
    np.testing.assert_array_equal(from_list.user_ids, data.user_ids)
    model = mfsgd.MatrixFactorization(n_factors=2, n_epochs=3, random_state=0).fit(data)
    assert model.user_ids_.tolist() == [5, 2**63, 2**63 + 1, 2**64 - 1]
    np.testing.assert_array_equal(model.user_factors(np.uint64(2**63 + 1)), model.user_factors_[2])
    assert model.predict([2**63 + 1], [2])[0] != model.predict([2**63], [2])[0]


def test_object_ids_are_checked_on_every_element():
    users = np.arange(1001).astype(object)
    users[1000] = 1000.7
    with pytest.raises(ValueError, match=r"users must hold integer or string ids, found 1000\.7 "
                                         r"at position 1000"):
        Ratings.from_arrays(users, np.arange(1001), np.ones(1001))
    users[1000] = "x"
    with pytest.raises(TypeError, match=r"users mixes strings and numbers: 'x' at position 1000"):
        Ratings.from_arrays(users, np.arange(1001), np.ones(1001))
    users[1000] = None
    with pytest.raises(TypeError, match=r"found None \(NoneType\) at position 1000"):
        Ratings.from_arrays(users, np.arange(1001), np.ones(1001))
    users[1000] = 1000.0
    assert Ratings.from_arrays(users, np.arange(1001), np.ones(1001)).user_ids[-1] == 1000


@pytest.mark.parametrize("bad", [[True, 2], [1, "a"], [b"a", b"b"]])
def test_lists_are_not_silently_coerced(bad):
    with pytest.raises(TypeError, match="users"):
        Ratings.from_arrays(bad, [1, 2], [3.0, 4.0])


@pytest.mark.parametrize("users, position", [(["a\0", "a"], 0), (["b", "a\0\0"], 1),
                                             (np.array(["b", "a\0"], dtype=object), 1)])
def test_ids_ending_in_nul_are_refused(users, position):
    with pytest.raises(ValueError, match=f"users holds an id ending in a NUL character at "
                                         f"position {position}"):
        Ratings.from_arrays(users, [1, 1], [1.0, 2.0])


def test_nul_inside_ids_keeps_them_apart():
    data = Ratings.from_arrays(["a\0b", "ab", np.str_("a\0c")], [1, 1, 1], [1.0, 2.0, 3.0])
    assert data.user_ids.tolist() == ["a\0b", "a\0c", "ab"]
    assert data.user_index(["ab", "a\0b"]).tolist() == [2, 0]


def test_bytes_ids_are_decoded_as_utf8():
    data = Ratings.from_arrays(np.array(["é".encode(), b"b"]), [1, 1], [1.0, 2.0])
    assert data.user_ids.tolist() == ["b", "é"]
    with pytest.raises(ValueError, match=r"users holds bytes that are not UTF-8 at position 1"):
        Ratings.from_arrays(np.array([b"a", b"\xff"]), [1, 1], [1.0, 2.0])


@pytest.mark.parametrize("ratings, message", [
    (np.array([3.0, 1e39]), r"ratings holds 1e\+39 at position 1, beyond the float32 range"),
    (np.array([3.0, -np.finfo(np.float64).max]), r"at position 1, beyond the float32 range"),
    ([3.0, 10**400], r"ratings holds 1000.* at position 1, beyond the float32 range"),
])
def test_ratings_beyond_float32_are_refused(ratings, message):
    with pytest.raises(ValueError, match=message):
        Ratings.from_arrays([1, 2], [1, 2], ratings)


@pytest.mark.parametrize("stamps, error, message", [
    ([1e300, 5], ValueError, r"timestamps holds the float 1e\+300 at position 0"),
    (np.array([5, 2**63], dtype=np.uint64), ValueError, r"timestamps holds 9223372036854775808 "
                                                         r"at position 1, beyond int64"),
    ([5, 2**70], ValueError, r"timestamps holds 1180591620717411303424 at position 1"),
    ([5.0, 1.5], ValueError, r"timestamps must hold whole numbers .* found 1\.5 at position 1"),
    (np.array(["2020-01-01", "NaT"], dtype="datetime64[s]"), ValueError, "NaT .* at position 1"),
    (np.array([5, 10**17], dtype="datetime64[Y]"), ValueError, "position 1, beyond the int64"),
    ([5, None], TypeError, r"found None \(NoneType\) at position 1"),
    (np.array([1, 2], dtype="timedelta64[s]"), TypeError, "timestamps must hold"),
])
def test_timestamps_that_cannot_be_exact_int64_are_refused(stamps, error, message):
    with pytest.raises(error, match=message):
        Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0], timestamps=stamps)


def test_datetimes_become_floored_unix_seconds():
    stamps = np.array(["1969-12-31T23:59:59.5", "2000-01-01T00:00:00.25"],
                      dtype="datetime64[ms]")
    data = Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0], timestamps=stamps)
    assert data.timestamps.tolist() == [-1, 946684800]
    days = Ratings.from_arrays([1], [1], [3.0], timestamps=np.array([2], dtype="datetime64[D]"))
    assert days.timestamps.tolist() == [2 * 86400]


def test_too_many_distinct_ids_are_refused(monkeypatch):
    from mfsgd.data import ratings as ratings_module
    monkeypatch.setattr(ratings_module, "MAX_IDS", 2)
    with pytest.raises(ValueError, match="items holds 3 distinct ids; a rating set holds at most"):
        Ratings.from_arrays([1, 1, 1], [5, 6, 7], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="distinct ids"):
        Ratings.from_arrays([1, 1, 1], ["a", "b", "c"], [1.0, 2.0, 3.0])


def test_the_constructor_checks_its_arrays():
    good = dict(indptr=[0, 2, 3], indices=[0, 1, 1], data=[1.0, 2.0, 3.0], user_ids=[10, 20],
                item_ids=["a", "b"])
    assert len(Ratings(**good)) == 3
    for change, message in [
        (dict(indices=np.array([0, 2**32 + 1, 1])), r"indices must lie in \[0, n_items\)"),
        (dict(indices=[1, 0, 1]), "strictly increase within each user"),
        (dict(indptr=[0, 3, 2]), "indptr"),
        (dict(data=[1.0, 1e39, 3.0]), r"data holds 1e\+39 at position 1"),
        (dict(user_ids=[20, 10]), "user_ids must be sorted and unique"),
        (dict(item_ids=["a", "a"]), "item_ids must be sorted and unique"),
        (dict(timestamps=[1, 2]), "one value per rating"),
    ]:
        with pytest.raises(ValueError, match=message):
            Ratings(**dict(good, **change))


def test_ratings_pickle_and_look_up_after_unpickling():
    import pickle
    data = Ratings.from_arrays(["b", "a"], [1, 2], [3.0, 4.0])
    assert data.user_index(["a"]).tolist() == [0]
    copy = pickle.loads(pickle.dumps(data))
    assert copy.user_index(["b", "zz"]).tolist() == [1, -1]
    np.testing.assert_array_equal(copy.data, data.data)


# ---------------------------------------------------------------- DataFrames
def test_from_dataframe_recognises_the_usual_column_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"userId": [1, 2, 1], "movieId": [10, 10, 20], "rating": [4.0, 3.5, 5.0],
                       "timestamp": [300, 100, 200]})
    data = Ratings.from_dataframe(df)
    assert data.user_ids.tolist() == [1, 2] and data.item_ids.tolist() == [10, 20]
    assert sorted(data.timestamps.tolist()) == [100, 200, 300]
    other = pd.DataFrame({" UserID": ["a", "b"], "ITEM_ID": ["x", "y"], "Score": [1, 2]})
    data = Ratings.from_dataframe(other)
    assert data.user_ids.tolist() == ["a", "b"] and data.timestamps is None
    assert Ratings.from_dataframe(dict(uid=[1], iid=[2], score=[3.0], ts=[4])).timestamps == [4]


def test_from_dataframe_keywords_win_and_choose_among_candidates():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"user_id": [1, 2], "uid": [7, 8], "item": [3, 3], "rating": [1.0, 2.0],
                       "score": [9.0, 9.0], "time": [5, 6], "ts": [1, 2]})
    with pytest.raises(ValueError, match=r"several columns of df look like the user ids: "
                                         r"\['user_id', 'uid'\]; pass user="):
        Ratings.from_dataframe(df)
    with pytest.raises(ValueError, match=r"timestamps: \['time', 'ts'\]; pass timestamp=.*"
                                         r"timestamp=False"):
        Ratings.from_dataframe(df, user="uid")
    data = Ratings.from_dataframe(df, user="uid", timestamp="ts")
    assert data.user_ids.tolist() == [7, 8] and data.timestamps.tolist() == [1, 2]
    assert data.data.tolist() == [1.0, 2.0]          # "rating" is named exactly: it wins
    data = Ratings.from_dataframe(df, user="uid", rating="score", timestamp=False)
    assert data.data.tolist() == [9.0, 9.0] and data.timestamps is None


def test_from_dataframe_errors_say_what_was_seen_and_which_keyword_fixes_it():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"customer": [1], "product": [2], "stars": [3.0]})
    with pytest.raises(ValueError, match=r"no column of df is recognised as the user ids "
                                         r"\(columns: \['customer', 'product', 'stars'\]; "
                                         r"recognised names: userid, .*; pass user="):
        Ratings.from_dataframe(df)
    with pytest.raises(ValueError, match=r"as the item ids .*pass item="):
        Ratings.from_dataframe(df, user="customer")
    with pytest.raises(ValueError, match=r"rating='rating' is not a column of df \(columns: "):
        Ratings.from_dataframe(df, user="customer", item="product", rating="rating")
    with pytest.raises(ValueError, match=r"df\['stars'\] \(ratings\) must be finite, found nan"):
        Ratings.from_dataframe(pd.DataFrame({"customer": [1, 2], "product": [2, 2],
                                             "stars": [3.0, np.nan]}),
                               user="customer", item="product", rating="stars")
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        Ratings.from_dataframe([1, 2, 3])


def test_from_dataframe_converts_time_zone_aware_datetimes_to_utc():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"user": [1], "item": [2], "rating": [3.0],
                       "timestamp": pd.to_datetime(["2020-01-01T01:00:00"]).tz_localize(
                           "Europe/Paris")})
    assert Ratings.from_dataframe(df).timestamps.tolist() == [1577836800]


@pytest.mark.parametrize("ids", [[5, -3, 2**62], ["b", "a", "é"],
                                 np.array([2**63, 2**64 - 1, 1], dtype=np.uint64)])
def test_to_dataframe_round_trips_through_from_dataframe(ids):
    pytest.importorskip("pandas")
    data = Ratings.from_arrays(ids, [1, 2, 1], [1.5, 2.25, 3.0], timestamps=[30, -20, 10])
    df = data.to_dataframe()
    assert list(df.columns) == ["user", "item", "rating", "timestamp"] and len(df) == 3
    back = Ratings.from_dataframe(df)
    for name in ("indptr", "indices", "data", "user_ids", "item_ids", "timestamps"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    no_times = Ratings.from_arrays(ids, [1, 2, 1], [1.0, 2.0, 3.0]).to_dataframe()
    assert list(no_times.columns) == ["user", "item", "rating"]


def test_to_dataframe_without_pandas_names_the_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"mfsgd\[pandas\]"):
        Ratings.from_arrays([1], [2], [3.0]).to_dataframe()
