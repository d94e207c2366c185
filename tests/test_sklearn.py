"""scikit-learn interoperability: clone, repr, the HTML display, tags and splitters
work on every mfsgd estimator when scikit-learn is installed; mfsgd never needs it."""
import numpy as np
import pytest

import mfsgd
from mfsgd.model_selection import GridSearchCV, KFold, RandomizedSearchCV, cross_validate

sklearn = pytest.importorskip("sklearn")
from sklearn import model_selection as sk_selection  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.utils import estimator_html_repr, get_tags  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402


@pytest.fixture(scope="module")
def ratings():
    users, items, values = mfsgd.make_synthetic(n_users=200, n_items=100, n_ratings=4000,
                                                random_state=1)
    return mfsgd.Ratings.from_arrays(users, items, np.clip(np.round(values), 1, 5))


def model(**params):
    defaults = dict(n_factors=4, n_epochs=3, learning_rate=0.01, random_state=0, n_threads=1)
    defaults.update(params)
    return mfsgd.MatrixFactorization(**defaults)


def estimators():
    template = model(n_factors=5)
    return [template,
            GridSearchCV(template, {"learning_rate": [0.01, 0.02]}, cv=KFold(2, random_state=0)),
            RandomizedSearchCV(template, {"learning_rate": [0.01, 0.02], "n_factors": [3, 5]},
                               n_iter=2, cv=2, random_state=0)]


@pytest.mark.parametrize("estimator", estimators(), ids=lambda e: type(e).__name__)
def test_clone_repr_and_html_display(estimator, ratings):
    copy = clone(estimator)
    assert type(copy) is type(estimator) and copy is not estimator
    assert repr(copy) == repr(estimator)
    assert copy.get_params(deep=False).keys() == estimator.get_params(deep=False).keys()
    if hasattr(estimator, "model"):
        assert copy.model is not estimator.model and repr(copy.model) == repr(estimator.model)
    assert "n_factors=5" in repr(estimator)
    html = estimator_html_repr(estimator)
    assert type(estimator).__name__ in html and "Not fitted" in html
    estimator.fit(ratings)
    assert "Fitted" in estimator_html_repr(estimator).replace("Not fitted", "")
    check_is_fitted(estimator)
    assert not hasattr(clone(estimator), "cv_results_")
    assert not hasattr(clone(estimator), "user_factors_")


@pytest.mark.parametrize("estimator", estimators(), ids=lambda e: type(e).__name__)
def test_sklearn_tags(estimator):
    tags = estimator.__sklearn_tags__()
    assert tags == get_tags(estimator)
    assert tags.estimator_type is None and not tags.target_tags.required
    assert tags.input_tags.sparse and not tags.input_tags.two_d_array
    assert tags.requires_fit
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(estimator)


def test_deep_parameters_as_sklearn_uses_them():
    search = estimators()[1]
    params = search.get_params(deep=True)
    assert params["model__n_factors"] == 5 and params["model"] is search.model
    search.set_params(**{"model__n_epochs": 7})
    assert search.model.n_epochs == 7 and clone(search).model.n_epochs == 7


SPLITTERS = [sk_selection.KFold(3, shuffle=True, random_state=0),
             sk_selection.ShuffleSplit(3, test_size=0.25, random_state=0),
             sk_selection.RepeatedKFold(n_splits=2, n_repeats=2, random_state=0),
             sk_selection.StratifiedKFold(3, shuffle=True, random_state=0),
             sk_selection.TimeSeriesSplit(3)]


@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda s: type(s).__name__)
def test_sklearn_splitters_index_the_ratings_in_csr_order(splitter, ratings):
    """A scikit-learn splitter's index arrays are positions into the ratings' CSR order: the
    folds are exactly Ratings.take of them, with the rating values as y (StratifiedKFold
    works: whole-number ratings are their own classes)."""
    positions = list(splitter.split(np.zeros((len(ratings), 1)), ratings.data))
    expected = cross_validate(model(), ratings, cv=positions)
    result = cross_validate(model(), ratings, cv=splitter, n_jobs=2)
    assert len(result["test_rmse"]) == len(positions)
    np.testing.assert_array_equal(result["test_rmse"], expected["test_rmse"])
    train, test = positions[0]
    manual = model().fit(ratings.take(train))
    assert result["test_rmse"][0] == manual.score(ratings.take(test))


def test_stratified_kfold_stratifies_half_star_ratings(ratings):
    """Half stars (as in MovieLens' ratings.csv) are classes too, not continuous targets that
    scikit-learn's stratified splitters refuse: the folds are StratifiedKFold's for the
    rating values as classes, so each test fold holds every value in its share of the whole."""
    half_stars = mfsgd.Ratings(ratings.indptr, ratings.indices, ratings.data - 0.5,
                               ratings.user_ids, ratings.item_ids)
    splitter = sk_selection.StratifiedKFold(3, shuffle=True, random_state=0)
    values, classes, counts = np.unique(half_stars.data, return_inverse=True,
                                        return_counts=True)
    positions = list(splitter.split(np.zeros((len(half_stars), 1)), classes))
    for _, test in positions:
        np.testing.assert_allclose(np.bincount(classes[test]) / len(test),
                                   counts / len(half_stars), atol=0.01)
    result = cross_validate(model(), half_stars, cv=splitter)
    expected = cross_validate(model(), half_stars, cv=positions)
    np.testing.assert_array_equal(result["test_rmse"], expected["test_rmse"])


def test_sklearn_kfold_without_shuffle_equals_mfsgds(ratings):
    ours = cross_validate(model(), ratings, cv=KFold(3, shuffle=False))
    theirs = cross_validate(model(), ratings, cv=sk_selection.KFold(3))
    np.testing.assert_array_equal(ours["test_rmse"], theirs["test_rmse"])


def test_searches_take_sklearn_splitters(ratings):
    splitter = sk_selection.ShuffleSplit(2, test_size=0.2, random_state=0)
    grid = GridSearchCV(model(), {"learning_rate": [0.005, 0.02]}, cv=splitter).fit(ratings)
    randomized = RandomizedSearchCV(model(), {"learning_rate": [0.005, 0.02]}, n_iter=2,
                                    cv=splitter, random_state=0).fit(ratings)
    assert grid.n_splits_ == randomized.n_splits_ == 2
    assert grid.best_params_ == randomized.best_params_


def test_splitters_needing_groups_are_refused_clearly(ratings):
    with pytest.raises(ValueError, match=r"cv=GroupKFold.*cannot split the ratings: .*groups.*"
                                         r"mfsgd passes it one sample per rating"):
        cross_validate(model(), ratings, cv=sk_selection.GroupKFold(3))


def test_sklearn_is_not_a_dependency(tmp_path):
    import subprocess
    import sys
    code = ("import sys; import mfsgd; from mfsgd import model_selection, metrics; "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    # Away from the checkout: `python -c` puts the working directory first on sys.path.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=120)
