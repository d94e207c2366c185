"""Error messages in the words of the command line: the library names its arguments
(``n_threads must be >= 1``, ``pass columns=``); the ``mfsgd`` command names its flags."""
import re

from ._commands import FLAG_OF

#: Arguments of read_ratings and of the commands, by the flag that sets them.
DATA_FLAGS = {"sep": "--sep", "columns": "--columns", "encoding": "--encoding",
              "header": "--header", "duplicates": "--duplicates", "test_size": "--test-size"}
#: How a flag spells the Python values that the messages suggest.
FLAG_VALUES = {("header", "True"): "yes", ("header", "False"): "no"}

_FLAGS = {**FLAG_OF, **DATA_FLAGS}
_NAMES = "|".join(sorted(map(re.escape, _FLAGS), key=len, reverse=True))
# name=value anywhere (not inside a word, path or flag); value quoted, True/False or bare.
_ASSIGNMENT = re.compile(rf"(?<![\w./-])({_NAMES})=('[^']*'|\"[^\"]*\"|[^\s,;)]*)")
# A message that starts with an argument's name: "n_threads must be >= 1, got 0".
_LEADING = re.compile(rf"^({_NAMES})(?=[\s:])")


def _assignment(match):
    name, value = match.group(1), match.group(2)
    if value[:1] in "'\"" and value[-1:] == value[:1] and len(value) >= 2:
        value = value[1:-1]
    value = FLAG_VALUES.get((name, value), value)
    return _FLAGS[name] + (f" {value}" if value else "")


def in_flags(message):
    """`message` with the arguments it names replaced by the command's flags.

    Parameters
    ----------
    message : str
        An error message of the library.

    Returns
    -------
    str
        For example ``"--threads must be >= 1, got 0"`` for ``"n_threads must be >= 1, got
        0"``, and ``"... pass --header yes"`` for ``"... pass header=True"``; other text is
        unchanged.
    """
    message = _ASSIGNMENT.sub(_assignment, message)
    # The values of also-suggested alternatives: "--duplicates last or 'mean'".
    message = re.sub(r"(--duplicates \w+) or '(\w+)'", r"\1 or \2", message)
    return _LEADING.sub(lambda match: _FLAGS[match.group(1)], message)
