"""The compiled kernels and their C headers: nothing here allocates per rating or holds the GIL.

- ``_sgd`` (``_sgd.pyx`` over ``_kernels.h`` / ``_kernels_impl.h``): the blocked SGD epoch of
  matrix factorization, the rating layout it runs over, batch prediction, and the seeded
  random streams both use.
- ``_topn`` (``_topn.pyx``): the one top-n engine, used by recommendations, neighbours and the
  ranking metrics; it shares the SGD kernel's dot product, so its scores equal ``predict``'s.
- ``_svdpp`` (``_svdpp.pyx`` over ``_svdpp.h`` / ``_svdpp_impl.h``, which reuse the ISA
  dispatch and helpers of ``_kernels.h``): the blocked SGD epoch of SVD++, the cells' pending
  implicit updates and the user vectors p + z.
"""
