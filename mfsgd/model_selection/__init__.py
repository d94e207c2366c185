"""Model selection: train/test splits, cross-validation and hyperparameter search.

Everything takes rating sets as :class:`mfsgd.Ratings` (or a scipy.sparse matrix or a
(users, items, ratings) tuple, converted to Ratings) and returns Ratings, so train and test
sets keep raw user and item ids; models predict by raw id, and a test user or item unknown to
a training fold gets the model's cold-start prediction.

* :func:`train_test_split` - one split: random, per user, or by time.
* :class:`KFold`, :class:`PredefinedSplit` - splitters yielding (train, test) Ratings.
* :func:`cross_validate` - fit and score a model on every fold, optionally in threads.
* :class:`GridSearchCV`, :class:`RandomizedSearchCV` - hyperparameter search by
  cross-validation, with :class:`ParameterGrid` and :class:`ParameterSampler`.
"""
from ._cv import cross_validate
from ._search import GridSearchCV, ParameterGrid, ParameterSampler, RandomizedSearchCV
from ._split import KFold, PredefinedSplit, train_test_split

__all__ = ["train_test_split", "KFold", "PredefinedSplit", "cross_validate", "GridSearchCV",
           "RandomizedSearchCV", "ParameterGrid", "ParameterSampler"]
