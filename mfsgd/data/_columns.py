"""Which column names mean user, item, rating and timestamp.

One table, shared by :func:`mfsgd.read_ratings` (header lines) and
:meth:`mfsgd.Ratings.from_dataframe` (DataFrame columns), so that both recognise the same names.
"""
ROLES = ("user", "item", "rating", "timestamp")

#: Column names recognised for each role, compared case-insensitively after stripping
#: surrounding whitespace.  The first names are the MovieLens ones.
ALIASES = {
    "user": ("userid", "user_id", "user", "uid"),
    "item": ("movieid", "movie_id", "item_id", "itemid", "item", "iid"),
    "rating": ("rating", "score"),
    "timestamp": ("timestamp", "time", "ts"),
}

_ROLE_OF_ALIAS = {alias: role for role, aliases in ALIASES.items() for alias in aliases}


def role_of(name):
    """The role a column name stands for, or None.

    Parameters
    ----------
    name : object
        A column name; anything but a str has no role.

    Returns
    -------
    str or None
        "user", "item", "rating", "timestamp", or None when `name` is none of the known names.
    """
    if not isinstance(name, str):
        return None
    return _ROLE_OF_ALIAS.get(name.strip().lower())


def match_roles(names):
    """Map each role to the position of the column that holds it.

    Parameters
    ----------
    names : sequence
        Column names, in order.

    Returns
    -------
    found : dict of str to int
        Role -> position, for every role that exactly one column names.
    clashes : dict of str to list of int
        Role -> positions, for every role that several columns name (for example both "user"
        and "userId"); such a role is not in `found`.
    """
    positions = {}
    for position, name in enumerate(names):
        role = role_of(name)
        if role is not None:
            positions.setdefault(role, []).append(position)
    found = {role: where[0] for role, where in positions.items() if len(where) == 1}
    clashes = {role: where for role, where in positions.items() if len(where) > 1}
    return found, clashes
