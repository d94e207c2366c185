"""Rating data: the :class:`Ratings` container, and everything that makes one.

- ``ratings``: :class:`Ratings` (user-major CSR with raw-id maps) and :func:`as_ratings`, the
  one converter of every accepted input (a tuple always holds raw ids).
- ``io``: :func:`read_ratings`, the delimited-text reader (``_fields``, ``_columns``,
  ``_textscan`` and ``_textsource`` are its parts).
- ``datasets``: :func:`load_movielens` and its download cache (``_download``).
- ``synthetic``: :func:`make_synthetic`, low-rank ratings for demos and tests.
- ``_idmap``: raw id <-> row index maps; ``_csr``: rating sets in a model's own index space.
"""
