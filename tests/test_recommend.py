"""Top-n recommendations and factor-cosine neighbours against NumPy brute force."""
import numpy as np
import pytest

import mfsgd
from mfsgd import MatrixFactorization, NotFittedError, make_synthetic
from mfsgd._kernels import _sgd


@pytest.fixture(scope="module")
def ratings():
    return make_synthetic(n_users=150, n_items=70, n_ratings=3000, random_state=1)


def fitted(train, **params):
    defaults = dict(n_factors=6, n_epochs=4, random_state=0, n_threads=2)
    defaults.update(params)
    return MatrixFactorization(**defaults).fit(train)


def seen_sets(users, items):
    seen = {}
    for user, item in zip(users.tolist(), items.tolist()):
        seen.setdefault(user, set()).add(item)
    return seen


def all_scores(model):
    """Unclipped predictions for every (user row, item row), computed as predict does."""
    n_users, n_items = model.n_users_, model.n_items_
    users = np.repeat(np.arange(n_users, dtype=np.int64), n_items)
    items = np.tile(np.arange(n_items, dtype=np.int64), n_users)
    out = np.empty(len(users))
    _sgd.predict(model.user_factors_, model.item_factors_, model.user_bias_, model.item_bias_,
                 model.global_mean_, users, items, out, 1)
    return out.reshape(n_users, n_items)


def brute_force_top(scores, n, excluded=(), candidates=None):
    """Item rows by descending score, ties to the lower row, after exclusions."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    allowed = set(range(len(scores)) if candidates is None else candidates) - set(excluded)
    top = np.array([i for i in order if i in allowed][:n], dtype=np.int64)
    return top, scores[top]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("biased", [True, False])
def test_recommend_equals_brute_force_exactly(ratings, dtype, biased):
    users, items, _ = ratings
    model = fitted(ratings, dtype=dtype, biased=biased)
    scores = all_scores(model)
    seen = seen_sets(users, items)
    for user in range(model.n_users_):
        got_items, got_scores = model.recommend(user, n=7)
        want_items, want_scores = brute_force_top(scores[user], 7, seen.get(user, ()))
        np.testing.assert_array_equal(got_items, want_items)
        np.testing.assert_array_equal(got_scores, want_scores)
    # The scores are the model's formula, and predict's values before clipping.
    items_3, scores_3 = model.recommend(3, n=70, exclude_seen=False)
    formula = (model.global_mean_ + model.user_bias_[3].astype(np.float64)
               + model.item_bias_[items_3] + model.item_factors_[items_3].astype(np.float64)
               @ model.user_factors_[3].astype(np.float64))
    np.testing.assert_allclose(scores_3, formula, rtol=1e-5)
    np.testing.assert_array_equal(np.clip(scores_3, *model.rating_range_),
                                  model.predict(np.full(len(items_3), 3), items_3))


def test_recommend_never_returns_a_seen_item(ratings):
    users, items, _ = ratings
    model = fitted(ratings)
    seen = seen_sets(users, items)
    top, scores = model.recommend_all(n=model.n_items_)
    for user in range(model.n_users_):
        returned = set(top[user][np.isfinite(scores[user])].tolist())
        assert not returned & seen.get(user, set())
        assert len(returned) == model.n_items_ - len(seen.get(user, ()))
    with_seen, _ = model.recommend(int(users[0]), n=model.n_items_, exclude_seen=False)
    assert seen[int(users[0])] <= set(with_seen.tolist())


def test_ties_rank_the_lower_item_index_first(ratings):
    model = fitted(ratings)
    model.item_factors_[:] = 0
    model.item_bias_[:] = 0
    got, scores = model.recommend(5, n=4, exclude_seen=False)
    assert list(got) == [0, 1, 2, 3] and len(set(scores.tolist())) == 1
    model.item_factors_[[40, 9, 12]] = 1
    model.user_factors_[5] = 1
    got, scores = model.recommend(5, n=4, exclude_seen=False)
    assert list(got) == [9, 12, 40, 0] and scores[0] == scores[2] > scores[3]


def test_recommend_all_matches_recommend_per_user(ratings):
    model = fitted(ratings)
    chosen = np.array([17, 3, 99, 3, 0])
    top, scores = model.recommend_all(chosen, n=5)
    assert top.shape == scores.shape == (5, 5)
    for row, user in enumerate(chosen):
        want_items, want_scores = model.recommend(user, n=5)
        np.testing.assert_array_equal(top[row], want_items)
        np.testing.assert_array_equal(scores[row], want_scores)
    every, _ = model.recommend_all(n=4, exclude_seen=False)
    assert every.shape == (model.n_users_, 4)
    np.testing.assert_array_equal(every[42], model.recommend(42, n=4, exclude_seen=False)[0])


def test_recommend_all_spans_several_user_chunks(ratings, monkeypatch):
    model = fitted(ratings)
    whole = model.recommend_all(n=6)
    monkeypatch.setattr(mfsgd.recommend, "USER_CHUNK", 16)
    chunked = model.recommend_all(n=6)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_n_larger_than_the_candidates(ratings):
    users, items, _ = ratings
    model = fitted(ratings)
    user = int(users[0])
    n_unseen = model.n_items_ - len(seen_sets(users, items)[user])
    got, scores = model.recommend(user, n=500)
    assert len(got) == len(scores) == n_unseen and len(set(got.tolist())) == n_unseen
    assert np.all(np.diff(scores) <= 0)
    top, top_scores = model.recommend_all([user], n=500)
    np.testing.assert_array_equal(top[0, :n_unseen], got)
    assert np.all(top[0, n_unseen:] == -1) and np.all(top_scores[0, n_unseen:] == -np.inf)
    assert top.dtype == np.int64


def test_items_restricts_the_candidates(ratings):
    users, items, _ = ratings
    model = fitted(ratings)
    user = int(users[0])
    seen = seen_sets(users, items)[user]
    candidates = [60, 2, 33, 2, 11, 45, 8] + sorted(seen)[:2]
    got, got_scores = model.recommend(user, n=4, items=candidates)
    want, want_scores = brute_force_top(all_scores(model)[user], 4, seen, candidates)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_scores, want_scores)
    everything, _ = model.recommend(user, n=20, items=candidates, exclude_seen=False)
    assert sorted(everything.tolist()) == sorted(set(candidates))
    assert len(model.recommend(user, items=[])[0]) == 0


def test_bad_arguments_are_named(ratings):
    model = fitted(ratings)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        model.recommend(0, n=0)
    with pytest.raises(TypeError, match="n must be an integer"):
        model.recommend_all(n=2.5)
    with pytest.raises(ValueError, match="items holds an id unknown to the model: 999"):
        model.recommend(0, items=[1, 999])
    with pytest.raises(KeyError, match="unknown user id 5000"):
        model.recommend(5000)
    with pytest.raises(KeyError, match="unknown user id -1"):
        model.recommend_all([0, -1])
    with pytest.raises(TypeError, match="exclude_seen must be True or False"):
        model.recommend(0, exclude_seen="yes")
    with pytest.raises(TypeError, match="user must be a single id"):
        model.recommend([0, 1])
    with pytest.raises(KeyError, match="unknown item id 70"):
        model.similar_items(70)
    with pytest.raises(ValueError, match="n must be >= 1"):
        model.similar_users(0, n=-3)
    with pytest.raises(NotFittedError):
        MatrixFactorization().recommend(0)


def brute_force_cosine(factors, row, n):
    unit = factors.astype(np.float64) / np.linalg.norm(factors.astype(np.float64), axis=1)[:, None]
    return brute_force_top(unit @ unit[row], n, excluded=(row,))


@pytest.mark.parametrize("kind", ["item", "user"])
def test_similar_excludes_the_query_and_matches_brute_force_cosine(ratings, kind):
    model = fitted(ratings, dtype=np.float64)
    factors = model.item_factors_ if kind == "item" else model.user_factors_
    similar = model.similar_items if kind == "item" else model.similar_users
    for query in (0, 5, 31):
        got, similarities = similar(query, n=8)
        want, want_similarities = brute_force_cosine(factors, query, 8)
        assert query not in got.tolist()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(similarities, want_similarities, rtol=1e-12)
    everyone, _ = similar(2, n=10_000)
    assert len(everyone) == len(factors) - 1 and 2 not in everyone.tolist()


def test_similar_items_in_float32_agree_with_float64_cosine(ratings):
    model = fitted(ratings)
    got, similarities = model.similar_items(4, n=5)
    want, want_similarities = brute_force_cosine(model.item_factors_, 4, 5)
    np.testing.assert_allclose(similarities, want_similarities, atol=1e-6)
    assert 4 not in got.tolist()


def test_thread_count_does_not_change_the_results(ratings):
    model = fitted(ratings)
    results = []
    for threads in (1, 2, 3):
        model.set_params(n_threads=threads)
        results.append(model.recommend_all(n=9))
    for items, scores in results[1:]:
        np.testing.assert_array_equal(items, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])


def test_seen_items_accumulate_over_partial_fit(ratings):
    users, items, values = ratings
    first = users != 7
    model = fitted((users[first], items[first], values[first]))
    new_items = np.array([1, 2, 3])
    model.partial_fit((np.array([7, 7, 7, 0]), np.append(new_items, 69), np.ones(4)))
    assert not set(new_items.tolist()) & set(model.recommend(7, n=70)[0].tolist())
    seen_by_0 = seen_sets(users, items)[0] | {69}
    assert not seen_by_0 & set(model.recommend(0, n=70)[0].tolist())


def test_early_stopping_hold_out_counts_as_seen(ratings):
    users, items, _ = ratings
    model = fitted(ratings, early_stopping=True, n_epochs=3)
    seen = seen_sets(users, items)
    for user in range(0, model.n_users_, 10):
        assert not seen.get(user, set()) & set(model.recommend(user, n=70)[0].tolist())


def test_folded_in_user_gets_recommendations(ratings):
    model = fitted(ratings)
    model.fold_in({3: 5.0, 10: 1.0}, user=400)
    got, scores = model.recommend(400, n=5)
    want = brute_force_top(all_scores(model)[list(model.user_ids_).index(400)], 5)[0]
    np.testing.assert_array_equal(got, model.item_ids_[want])


def test_string_ids_from_a_duck_typed_rating_set(string_id_ratings):
    (user_names, item_names, _), string_ratings = string_id_ratings
    model = fitted(string_ratings)
    user = user_names[0]
    got, _ = model.recommend(user, n=5)
    assert got.dtype.kind == "U" and set(got.tolist()) <= set(item_names.tolist())
    assert not set(got.tolist()) & set(item_names[user_names == user].tolist())
    top, scores = model.recommend_all([user, user_names[1]], n=100)
    np.testing.assert_array_equal(top[0][np.isfinite(scores[0])], model.recommend(user, n=100)[0])
    assert top[0][-1] == "" and scores[0][-1] == -np.inf
    restricted, _ = model.recommend(user, items=["item-001", "item-002"], exclude_seen=False)
    assert sorted(restricted.tolist()) == ["item-001", "item-002"]
    similar, _ = model.similar_items("item-001", n=3)
    assert "item-001" not in similar.tolist() and similar.dtype.kind == "U"
    with pytest.raises(KeyError, match="unknown user id 'nobody'"):
        model.recommend("nobody")
    with pytest.raises(ValueError, match="unknown to the model: 'item-zzz'"):
        model.recommend(user, items=["item-zzz"])


def test_string_ids_with_mfsgd_ratings(string_id_ratings):
    (user_names, item_names, values), _ = string_id_ratings
    model = fitted(mfsgd.Ratings.from_arrays(user_names, item_names, values))
    got, scores = model.recommend(user_names[0], n=5)
    assert got.dtype.kind == "U" and len(got) == 5 and np.all(np.diff(scores) <= 0)
    assert not set(got.tolist()) & set(item_names[user_names == user_names[0]].tolist())


def test_rows_and_columns_without_ratings_are_never_recommended_nor_neighbours():
    """A scipy.sparse matrix's empty rows and columns get no factors (no phantom ids)."""
    import scipy.sparse as sp
    from mfsgd.metrics import top_k_items
    users, items, values = make_synthetic(n_users=40, n_items=25, n_ratings=500, random_state=4)
    empty_users, empty_items = [5, 17, 39], [3, 11, 24]
    keep = ~np.isin(users, empty_users) & ~np.isin(items, empty_items)
    matrix = sp.csr_matrix((values[keep], (users[keep], items[keep])), shape=(40, 25))
    model = fitted(matrix)
    assert not set(model.user_ids_.tolist()) & set(empty_users)
    assert not set(model.item_ids_.tolist()) & set(empty_items)
    assert model.n_users_ == 37 and model.n_items_ == 22
    for user in model.user_ids_[:10]:
        got, _ = model.recommend(user, n=25, exclude_seen=False)
        assert len(got) == 22 and not set(got.tolist()) & set(empty_items)
    top, scores = model.recommend_all(n=25, exclude_seen=False)
    assert not set(top[np.isfinite(scores)].tolist()) & set(empty_items)
    neighbours, _ = model.similar_items(model.item_ids_[0], n=30)
    assert len(neighbours) == 21 and not set(neighbours.tolist()) & set(empty_items)
    neighbours, _ = model.similar_users(model.user_ids_[0], n=50)
    assert len(neighbours) == 36 and not set(neighbours.tolist()) & set(empty_users)
    lists = top_k_items(model, model.user_ids_, k=22)
    assert (lists >= 0).all() and not set(lists.ravel().tolist()) & set(empty_items)
    with pytest.raises(KeyError, match="unknown user id 5"):
        model.recommend(5)
    # An id without ratings predicts like an unknown one: the global mean and the known bias.
    item_row = list(model.item_ids_).index(0)
    assert model.predict(5, 0) == pytest.approx(
        np.clip(model.global_mean_ + model.item_bias_[item_row], *model.rating_range_))
    assert model.predict(5, 3) == pytest.approx(np.clip(model.global_mean_,
                                                        *model.rating_range_))


def test_ids_of_2_63_and_more_come_back_exactly_from_every_ranking():
    """uint64 ids are never cast to int64 on the way out (recommend_all used to, for -1)."""
    from mfsgd.metrics import precision_at_k, top_k_items
    users, items, values = make_synthetic(n_users=30, n_items=12, n_ratings=200, random_state=5)
    big = np.uint64(2**63)
    data = mfsgd.Ratings.from_arrays(users.astype(np.uint64) + big, items.astype(np.uint64) + big,
                                     values)
    model = fitted(data)
    assert model.item_ids_.dtype == np.uint64 and model.item_ids_.min() >= 2**63
    known = set(model.item_ids_.tolist())
    top, scores = model.recommend_all(n=model.n_items_ + 2)
    assert top.dtype == np.uint64
    assert set(top[np.isfinite(scores)].tolist()) <= known
    assert (top[~np.isfinite(scores)] == 2**64 - 1).all()
    user = int(model.user_ids_[0])
    np.testing.assert_array_equal(top[0][np.isfinite(scores[0])],
                                  model.recommend(user, n=model.n_items_)[0])
    lists = top_k_items(model, [user, int(model.user_ids_[1])], k=model.n_items_ + 1)
    assert lists.dtype == np.uint64 and set(lists[:, :-1].ravel().tolist()) <= known
    assert lists[0, -1] == 2**64 - 1
    assert 0 <= precision_at_k(model, data, k=3) <= 1
    with pytest.raises(ValueError, match="fill_value=-1 does not fit the dtype uint64"):
        top_k_items(model, [user], k=3, fill_value=-1)
