"""scikit-learn style parameter handling without depending on scikit-learn.

The protocol scikit-learn's ``clone``, ``repr`` and HTML display use: ``get_params(deep)`` /
``set_params`` from the names of ``__init__``'s arguments (nested parameters as
``"<name>__<parameter>"``), ``__sklearn_tags__`` and ``__sklearn_is_fitted__``.
"""
import inspect


class ParamsMixin:
    """get_params / set_params / repr from the names of ``__init__``'s keyword arguments."""

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return [name for name, p in signature.parameters.items()
                if name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep=True):
        """Return the parameters as a dict.

        Parameters
        ----------
        deep : bool, default=True
            Also list the parameters of parameters that are estimators themselves (such as a
            search's `model`), as ``"<name>__<parameter>"``, as scikit-learn does.

        Returns
        -------
        dict
        """
        params = {}
        for name in self._param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and _is_estimator(value):
                params.update((f"{name}__{key}", item)
                              for key, item in value.get_params(deep=True).items())
        return params

    def set_params(self, **params):
        """Set parameters by name and return self.

        ``"<name>__<parameter>"`` sets a parameter of the estimator held in parameter
        `name` (for example ``search.set_params(model__n_factors=50)``).  Unknown names raise
        ValueError.

        Parameters
        ----------
        **params
            New parameter values.

        Returns
        -------
        self
        """
        valid = set(self._param_names())
        nested = {}
        for key, value in params.items():
            name, nested_key, sub_name = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; "
                                 f"valid parameters are {sorted(valid)}")
            if nested_key:
                nested.setdefault(name, {})[sub_name] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            holder = getattr(self, name)
            if not _is_estimator(holder):
                raise ValueError(f"invalid parameter {name}__{next(iter(sub_params))!r} for "
                                 f"{type(self).__name__}: {name} holds {holder!r}, which has "
                                 f"no parameters")
            holder.set_params(**sub_params)
        return self

    def __repr__(self):
        defaults = {name: p.default for name, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                   if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"


class EstimatorMixin(ParamsMixin):
    """Parameters plus the tags scikit-learn asks estimators for (`__sklearn_tags__`).

    mfsgd's estimators take rating sets (mfsgd.Ratings, scipy.sparse matrices or
    (users, items, ratings) tuples), not a feature matrix and a target: to scikit-learn they
    are estimators of no particular type that accept sparse input and need no ``y``.
    """

    def __sklearn_tags__(self):
        """scikit-learn's tags for this estimator (imports scikit-learn, version >= 1.6).

        Returns
        -------
        sklearn.utils.Tags
        """
        from sklearn.utils import InputTags, Tags, TargetTags
        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    input_tags=InputTags(two_d_array=False, sparse=True))

    def __sklearn_is_fitted__(self):
        """Whether the estimator is fitted (scikit-learn's ``check_is_fitted`` asks this).

        Returns
        -------
        bool
        """
        return self._is_fitted()

    def _is_fitted(self):
        raise NotImplementedError


def _is_estimator(value):
    return hasattr(value, "get_params") and not isinstance(value, type)


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True                                  # NaN defaults (e.g. error_score)
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return a is b


def clone(estimator):
    """Return an unfitted copy of `estimator` with the same parameters.

    Parameters that are estimators themselves (a search's `model`) are cloned too; other
    values are shared (scikit-learn's ``clone`` deep-copies them).

    Parameters
    ----------
    estimator : MatrixFactorization, GridSearchCV, RandomizedSearchCV or another estimator
        with ``get_params``.

    Returns
    -------
    estimator
        A new object of the same class.
    """
    params = {name: clone(value) if _is_estimator(value) else value
              for name, value in estimator.get_params(deep=False).items()}
    return type(estimator)(**params)
