"""The factor models."""


def load(path):
    """Load a model saved with ``save``, whatever its class.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MatrixFactorization or SVDpp
        The class the file holds (``MatrixFactorization.load`` and ``SVDpp.load`` accept only
        their own class), equal to the saved model, array for array.

    Raises
    ------
    ValueError
        When the file is damaged, altered, not an mfsgd model, or of a newer format.
    """
    from ._base import FactorModel
    return FactorModel.load(path)
