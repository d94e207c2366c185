"""The exceptions mfsgd raises beyond the built-in ones (ValueError, TypeError, KeyError, ...)."""


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became infinite or NaN."""


class NotFittedError(ValueError, AttributeError):
    """The model was used before ``fit``."""


class NotCachedError(FileNotFoundError):
    """A named data set is not in the cache and no download was asked for.

    `name`, `path` (the expected archive) and `url` let a caller word its own hint.
    """

    def __init__(self, message, name, path, url):
        super().__init__(message)
        self.name, self.path, self.url = name, path, url
