"""Public path of :mod:`mfsgd.data.datasets`: the MovieLens loaders and their cache folder."""
from .data.datasets import (MOVIELENS, MOVIELENS_URL, SPLIT_FOLDS, load_movielens,
                            load_movielens_split, movielens_data_home)

__all__ = ["load_movielens", "load_movielens_split", "movielens_data_home", "MOVIELENS",
           "MOVIELENS_URL", "SPLIT_FOLDS"]
