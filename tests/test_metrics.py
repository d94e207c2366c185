"""mfsgd.metrics: rating errors and top-k ranking metrics against hand-computed examples."""
import math

import numpy as np
import pytest

import mfsgd
from mfsgd import metrics
from mfsgd.metrics import map_at_k, mae, ndcg_at_k, precision_at_k, recall_at_k, rmse, top_k_items


def test_rmse_and_mae_by_hand():
    assert rmse([1, 2, 3], [1, 4, 0]) == pytest.approx(math.sqrt((0 + 4 + 9) / 3))
    assert mae([1, 2, 3], [1, 4, 0]) == pytest.approx(5 / 3)
    assert rmse(np.float32([2.5]), np.float32([2.5])) == 0.0


@pytest.mark.parametrize("y_true, y_pred, error, word", [
    ([1, 2], [1], ValueError, "same length"),
    ([], [], ValueError, "y_true is empty"),
    ([1, np.nan], [1, 2], ValueError, "y_true must be finite"),
    ([1, 2], [[1, 2]], ValueError, "y_pred must be one-dimensional"),
    (["a"], [1.0], TypeError, "y_true must hold numbers"),
])
def test_rmse_rejects_bad_input(y_true, y_pred, error, word):
    with pytest.raises(error, match=word):
        rmse(y_true, y_pred)
    with pytest.raises(error, match=word):
        mae(y_true, y_pred)


@pytest.fixture
def small_test():
    """a rates 1:5, 2:3, 3:4; b rates 2:4; c rates 4:2 (no rating >= 4)."""
    return mfsgd.Ratings.from_arrays(["a", "a", "a", "b", "c"], [1, 2, 3, 2, 4],
                                     [5, 3, 4, 4, 2])


LISTS = np.array([[3, 2, 1],      # a: relevant {1, 3} -> hits 1 0 1
                  [5, 2, -1],     # b: relevant {2}    -> hits 0 1 0 (padded)
                  [4, 1, 2]])     # c: no relevant item at threshold 4 -> skipped
USERS = ["a", "b", "c"]


def test_ranking_metrics_by_hand(small_test):
    kwargs = dict(k=3, threshold=4.0, users=USERS)
    assert precision_at_k(LISTS, small_test, **kwargs) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(LISTS, small_test, **kwargs) == pytest.approx(1.0)
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_b = (1 / math.log2(3)) / 1
    assert ndcg_at_k(LISTS, small_test, **kwargs) == pytest.approx((ndcg_a + ndcg_b) / 2)
    ap_a = (1 + 2 / 3) / 2             # precision@1 + precision@3 over min(3, |R|=2)
    ap_b = (1 / 2) / 1
    assert map_at_k(LISTS, small_test, **kwargs) == pytest.approx((ap_a + ap_b) / 2)


def test_ranking_metrics_at_1(small_test):
    kwargs = dict(k=1, threshold=4.0, users=USERS)
    assert precision_at_k(LISTS, small_test, **kwargs) == pytest.approx(0.5)
    assert recall_at_k(LISTS, small_test, **kwargs) == pytest.approx(0.25)
    assert ndcg_at_k(LISTS, small_test, **kwargs) == pytest.approx(0.5)
    assert map_at_k(LISTS, small_test, **kwargs) == pytest.approx(0.5)


def test_without_threshold_every_test_item_is_relevant(small_test):
    # a: {1,2,3} all hit; b: {2} hit at rank 2; c: {4} hit at rank 1.
    value = precision_at_k(LISTS, small_test, k=3)      # users default to test.user_ids
    assert value == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)
    assert recall_at_k(LISTS, small_test, k=3) == pytest.approx(1.0)
    assert map_at_k(LISTS, small_test, k=3) == pytest.approx((1 + 0.5 + 1) / 3)


def test_map_normalises_by_min_of_k_and_relevant(small_test):
    # a has 3 relevant items (no threshold); at k=2 both slots hit: AP = (1 + 1) / min(2, 3) = 1
    assert map_at_k([[1, 3]], small_test, k=2, users=["a"]) == pytest.approx(1.0)
    assert ndcg_at_k([[1, 3]], small_test, k=2, users=["a"]) == pytest.approx(1.0)
    assert recall_at_k([[1, 3]], small_test, k=2, users=["a"]) == pytest.approx(2 / 3)


def test_users_absent_from_test_and_unknown_items_are_skipped_or_missed(small_test):
    lists = np.array([[99, 1], [1, 3]])
    value = precision_at_k(lists, small_test, k=2, threshold=4, users=["zz", "a"])
    assert value == pytest.approx(1.0)       # only a counts; item 99 is simply not relevant
    with pytest.warns(RuntimeWarning, match="no user has a relevant"):
        assert math.isnan(precision_at_k(lists, small_test, k=2, users=["zz", "yy"]))


def test_string_item_ids_with_fill():
    test = mfsgd.Ratings.from_arrays([1, 1, 2], ["x", "y", "x"], [5, 1, 4])
    lists = np.array([["x", ""], ["z", "x"]])
    assert precision_at_k(lists, test, k=2, threshold=4, users=[1, 2]) == pytest.approx(0.5)
    assert map_at_k(lists, test, k=2, threshold=4, users=[1, 2]) == pytest.approx((1 + 0.5) / 2)


def test_ranking_argument_errors(small_test):
    with pytest.raises(ValueError, match="k=4 exceeds"):
        precision_at_k(LISTS, small_test, k=4, users=USERS)
    with pytest.raises(TypeError, match="k must be an integer"):
        precision_at_k(LISTS, small_test, k=2.5, users=USERS)
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(LISTS, small_test, k=0, users=USERS)
    with pytest.raises(ValueError, match="users has 2 ids"):
        ndcg_at_k(LISTS, small_test, k=3, users=["a", "b"])
    with pytest.raises(ValueError, match="recommended must be two-dimensional"):
        map_at_k([1, 2, 3], small_test, k=1, users=["a"])
    with pytest.raises(ValueError, match="lists item 2 more than once"):
        precision_at_k([[2, 2]], small_test, k=2, users=["a"])
    with pytest.raises(ValueError, match="exclude applies only"):
        precision_at_k(LISTS, small_test, k=3, users=USERS, exclude=small_test)
    with pytest.raises(TypeError, match="test must be"):
        precision_at_k(LISTS, [1, 2], k=3)
    with pytest.raises(TypeError, match="threshold must be a real number"):
        precision_at_k(LISTS, small_test, k=3, users=USERS, threshold="4")


@pytest.fixture
def toy_model():
    """Users u, v and items i0..i3 with hand-set one-factor scores u: i2>i1>i0>i3, v: reverse."""
    train = mfsgd.Ratings.from_arrays(["u", "u", "v", "v"], ["i0", "i2", "i1", "i3"],
                                      [4, 5, 3, 2])
    model = mfsgd.MatrixFactorization(n_factors=1, n_epochs=1, random_state=0).fit(train)
    model.user_factors_[:] = [[1.0], [-1.0]]
    model.item_factors_[:] = [[1.0], [2.0], [3.0], [0.5]]
    model.item_bias_[:] = [0.0, 0.0, 0.0, 1.0]
    return model, train


def test_top_k_items_orders_by_score_and_excludes(toy_model):
    model, train = toy_model
    # scores u: 1, 2, 3, 1.5 ; v: -1, -2, -3, 0.5 ; unknown user w: item bias only.
    top = top_k_items(model, ["u", "v", "w"], k=2)
    np.testing.assert_array_equal(top, [["i2", "i1"], ["i3", "i0"], ["i3", "i0"]])
    top = top_k_items(model, ["u", "v"], k=4, exclude=train)
    np.testing.assert_array_equal(top, [["i1", "i3", "", ""], ["i0", "i2", "", ""]])
    top = top_k_items(model, ["u"], k=6, fill_value="-", batch_size=1)
    np.testing.assert_array_equal(top, [["i2", "i1", "i3", "i0", "-", "-"]])


def test_metrics_from_a_model(toy_model):
    model, train = toy_model
    test = mfsgd.Ratings.from_arrays(["u", "v"], ["i1", "i2"], [5, 5])
    # u's list without training items: i1, i3 -> hit at 1; v's: i0, i2 -> hit at 2.
    assert precision_at_k(model, test, k=1, exclude=train) == pytest.approx(0.5)
    assert recall_at_k(model, test, k=2, exclude=train) == pytest.approx(1.0)
    assert map_at_k(model, test, k=2, exclude=train) == pytest.approx((1 + 0.5) / 2)
    # without exclusion u's list starts with i2 (rated in training): no hit at 1
    assert precision_at_k(model, test, k=1) == pytest.approx(0.0)
    assert ndcg_at_k(model, test, k=2, users=["u"], exclude=train) == pytest.approx(1.0)


def test_rmse_and_mae_of_a_model_on_ratings(toy_model):
    """rmse and mae also take (model, ratings), like the ranking metrics."""
    from mfsgd.model_selection import GridSearchCV
    model, train = toy_model
    test = mfsgd.Ratings.from_arrays(["u", "v", "w"], ["i1", "i2", "i0"], [5, 1, 3])
    users, items, values = test.to_arrays()
    predicted = model.predict(users, items)
    assert rmse(model, test) == pytest.approx(rmse(values, predicted), rel=1e-12)
    assert mae(model, test) == pytest.approx(mae(values, predicted), rel=1e-12)
    assert rmse(y_true=values, y_pred=predicted) == rmse(values, predicted)
    assert rmse(model, test) == model.score(test) and mae(model, test) == model.score(test, "mae")
    search = GridSearchCV(mfsgd.MatrixFactorization(n_factors=1, n_epochs=2, random_state=0),
                          {"learning_rate": [0.01]}, cv=2).fit(train)
    assert rmse(search, test) == search.best_estimator_.score(test)
    assert mae(search, test) == search.best_estimator_.score(test, metric="mae")
    with pytest.raises(mfsgd.NotFittedError):
        rmse(mfsgd.MatrixFactorization(), test)


def test_top_k_items_checks_arguments(toy_model):
    model, _ = toy_model
    with pytest.raises(TypeError, match="model must be a fitted"):
        top_k_items(mfsgd.MatrixFactorization(), ["u"])
    with pytest.raises(TypeError, match="fill_value must be a string"):
        top_k_items(model, ["u"], fill_value=-1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        top_k_items(model, ["u"], batch_size=0)
    with pytest.raises(ValueError, match="users must be one-dimensional"):
        top_k_items(model, [["u"]])


def test_top_k_items_matches_predict_on_synthetic_data():
    users, items, ratings = mfsgd.make_synthetic(n_users=60, n_items=40, n_ratings=1500,
                                                 random_state=3)
    model = mfsgd.MatrixFactorization(n_factors=4, n_epochs=5, random_state=0, n_threads=1)
    model.fit((users, items, ratings))
    top = top_k_items(model, np.arange(60), k=5, batch_size=7)
    grid_u, grid_i = np.meshgrid(np.arange(60), np.arange(40), indexing="ij")
    predicted = model.fit_state_.predict_rows(grid_u.ravel(), grid_i.ravel()).reshape(60, 40)
    unclipped = model.user_factors_ @ model.item_factors_.T + model.item_bias_
    expected = np.argsort(-unclipped, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(top, expected)
    assert (np.take_along_axis(predicted, top, 1)[:, 0] >= predicted.max(axis=1) - 1e-6).all()


def test_module_is_exported():
    assert mfsgd.metrics is metrics
