"""scikit-learn style parameter handling without depending on scikit-learn."""
import inspect


class ParamsMixin:
    """get_params / set_params / repr from the names of ``__init__``'s keyword arguments."""

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return [name for name, p in signature.parameters.items()
                if name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep=True):
        """Return the estimator's parameters as a dict (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set parameters by name and return self; unknown names raise ValueError."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {name: p.default for name, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True                                  # NaN defaults (e.g. error_score)
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return a is b


def clone(estimator):
    """Return an unfitted copy of `estimator` with the same parameters."""
    return type(estimator)(**estimator.get_params())
