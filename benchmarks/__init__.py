"""mfsgd's benchmark suite: ``python -m benchmarks --help``.

Throughput (million rating updates per second), seconds per epoch, peak memory and test RMSE
of MatrixFactorization over a grid of data sizes, factor counts and thread counts, each fit in
its own subprocess; scaling with the number of ratings; and, where they are available, the
external serial C yardstick on identical data and Surprise's SVD on MovieLens 100K.
"""
