"""The package's shape: public import paths that users rely on keep working after modules moved."""
import importlib

import pytest

# module path -> names users import from it (README examples, docs, earlier versions).
PUBLIC_PATHS = {
    "mfsgd": ["MatrixFactorization", "Ratings", "DivergenceError", "NotFittedError",
              "NotCachedError", "clone",
              "make_synthetic", "read_ratings", "load_movielens", "__version__", "metrics",
              "model_selection"],
    "mfsgd.exceptions": ["DivergenceError", "NotFittedError", "NotCachedError"],
    "mfsgd.model": ["MatrixFactorization", "DivergenceError", "NotFittedError"],
    "mfsgd.ratings": ["Ratings", "as_ratings"],
    "mfsgd.io": ["read_ratings", "MAX_LINE_BYTES"],
    "mfsgd.datasets": ["load_movielens", "load_movielens_split", "movielens_data_home"],
    "mfsgd.synthetic": ["make_synthetic"],
    "mfsgd.metrics": ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                      "top_k_items"],
    "mfsgd.model_selection": ["train_test_split", "KFold", "PredefinedSplit", "cross_validate",
                              "GridSearchCV", "RandomizedSearchCV", "ParameterGrid",
                              "ParameterSampler"],
    "mfsgd.recommend": ["recommend", "recommend_all", "similar_items", "similar_users"],
    "mfsgd.persistence": ["save", "load", "FORMAT_VERSION"],
    "mfsgd.cli": ["main", "build_parser"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_PATHS))
def test_public_import_paths(module):
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC_PATHS[module] if not hasattr(imported, name)]
    assert missing == []


def test_re_export_modules_hand_out_the_implementations():
    import mfsgd
    from mfsgd import datasets, io, ratings
    from mfsgd.data import datasets as data_datasets, io as data_io, ratings as data_ratings
    assert ratings.Ratings is data_ratings.Ratings is mfsgd.Ratings
    assert ratings.as_ratings is data_ratings.as_ratings
    assert io.read_ratings is data_io.read_ratings is mfsgd.read_ratings
    assert io.MAX_LINE_BYTES == data_io.MAX_LINE_BYTES
    assert datasets.load_movielens is data_datasets.load_movielens is mfsgd.load_movielens
