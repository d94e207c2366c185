"""Surprise's SVD beside mfsgd on MovieLens 100K (u1.base / u1.test), k = 100, 20 epochs.

Four fits on the same split:
  * surprise.SVD(n_factors=100, n_epochs=20, random_state=0), Surprise's defaults otherwise
    (lr_all 0.005, reg_all 0.02, init_std_dev 0.1, biased);
  * mfsgd with the same k, epochs, learning rate, regularization and init_std ("matched");
  * mfsgd with its own defaults except n_epochs=20 ("defaults");
  * mfsgd tuned for 20 epochs at k = 100 ("tuned": learning_rate 0.015, regularization 0.05,
    init_std 0.01, the best of a 4 x 4 x 2 grid by 5-fold cross-validation on u1.base alone,
    `GridSearchCV(cv=KFold(5, shuffle=True, random_state=0))`, mean RMSE 0.9170).
Updates per second are 20 epochs x n_train ratings over each fit's wall time (median of 5);
each fit gets its library's prepared training set (Surprise's Trainset, an mfsgd.Ratings),
built outside the timing. mfsgd runs on one thread (Surprise has one), and also on every
thread count asked for.
"""
import time

import numpy as np

N_FACTORS = 100
N_EPOCHS = 20
CURVE_EPOCHS = (1, 2, 3, 5, 8, 12, 16)  # Surprise has no per-epoch hook: refit to each
TUNED = {"learning_rate": 0.015, "regularization": 0.05, "init_std": 0.01}
REPEATS = 5  # the 20-epoch fits take well under a second: time each 5 times, keep the median


def read_split(directory, name):
    """(users, items, ratings) of a MovieLens 100K split file such as u1.base."""
    table = np.loadtxt(directory / name, dtype=np.int64, usecols=(0, 1, 2))
    return table[:, 0], table[:, 1], table[:, 2].astype(np.float32)


def available():
    try:
        import surprise  # noqa: F401
        return True
    except ImportError:
        return False


def _surprise_fit(trainset, testset, n_epochs):
    from surprise import SVD, accuracy
    algo = SVD(n_factors=N_FACTORS, n_epochs=n_epochs, random_state=0)
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    rmse = accuracy.rmse(algo.test(testset), verbose=False)
    return seconds, float(rmse)


def _mfsgd_fit(train, test, n_threads, **params):
    import mfsgd
    times = []
    for _ in range(REPEATS):
        model = mfsgd.MatrixFactorization(n_factors=N_FACTORS, n_epochs=N_EPOCHS,
                                          n_threads=n_threads, random_state=0, **params)
        start = time.perf_counter()
        model.fit(train)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    rmse = model.score(test)
    # a second fit with per-epoch validation (outside the timed kernel) for the curve
    curve_model = mfsgd.MatrixFactorization(n_factors=N_FACTORS, n_epochs=N_EPOCHS,
                                            n_threads=n_threads, random_state=0, **params)
    curve_model.fit(train, validation=test)
    # x of the curve: fit set-up (the timed fit's wall time minus its epochs) plus the epochs
    # so far, comparable with Surprise's whole-fit times
    setup = max(0.0, seconds - sum(r["seconds"] for r in model.history_))
    cumulative = setup + np.cumsum([r["seconds"] for r in curve_model.history_])
    curve = [{"epoch": r["epoch"], "seconds": float(c), "valid_rmse": r["valid_rmse"]}
             for r, c in zip(curve_model.history_, cumulative)]
    median = float(np.median([r["seconds"] for r in model.history_]))
    return {"fit_seconds": seconds, "fit_seconds_all": times, "setup_seconds": setup,
            "test_rmse": float(rmse),
            "updates_per_s": N_EPOCHS * len(train) / seconds,
            "kernel_mupd_s": len(train) / median / 1e6, "curve": curve}


def run(directory, threads=(1,), log=print):
    """Run the comparison; returns a dict (see the module docstring)."""
    import surprise
    from surprise import Dataset, Reader
    from surprise.model_selection import PredefinedKFold

    import mfsgd

    train, test = read_split(directory, "u1.base"), read_split(directory, "u1.test")
    n_train = len(train[2])
    reader = Reader(line_format="user item rating timestamp", sep="\t", rating_scale=(1, 5))
    folds = Dataset.load_from_folds([(str(directory / "u1.base"), str(directory / "u1.test"))],
                                    reader)
    trainset, testset = next(PredefinedKFold().split(folds))
    assert trainset.n_ratings == n_train and len(testset) == len(test[2])

    out = {"data": str(directory), "split": "u1.base/u1.test", "n_train": n_train,
           "n_test": len(test[2]), "n_factors": N_FACTORS, "n_epochs": N_EPOCHS,
           "surprise_version": surprise.__version__}
    curve = []
    for n_epochs in CURVE_EPOCHS:
        seconds, rmse = _surprise_fit(trainset, testset, n_epochs)
        curve.append({"epoch": n_epochs, "seconds": seconds, "valid_rmse": rmse})
        log(f"  surprise SVD {n_epochs:2d} epochs: {seconds:.3f} s, test RMSE {rmse:.4f}")
    times = []
    for _ in range(REPEATS):
        seconds, rmse = _surprise_fit(trainset, testset, N_EPOCHS)
        times.append(seconds)
    seconds = float(np.median(times))
    curve.append({"epoch": N_EPOCHS, "seconds": seconds, "valid_rmse": rmse})
    log(f"  surprise SVD {N_EPOCHS:2d} epochs: {seconds:.3f} s (median of {REPEATS}), "
        f"test RMSE {rmse:.4f}")
    out["surprise"] = {"fit_seconds": seconds, "fit_seconds_all": times, "test_rmse": rmse,
                       "updates_per_s": N_EPOCHS * n_train / seconds, "curve": curve,
                       "params": {"lr_all": 0.005, "reg_all": 0.02, "init_std_dev": 0.1}}
    matched = {"learning_rate": 0.005, "regularization": 0.02, "init_std": 0.1}
    # Each library's fit gets its own prepared training set, built outside the timing, as
    # Surprise's Trainset is.
    train_ratings = mfsgd.Ratings.from_arrays(*train)
    out["mfsgd"] = {}
    for t in threads:
        for label, params in (("matched", matched), ("defaults", {}), ("tuned", TUNED)):
            result = _mfsgd_fit(train_ratings, test, t, **params)
            result["params"] = params or "mfsgd defaults, n_epochs=20"
            result["ratio_vs_surprise"] = result["updates_per_s"] / out["surprise"]["updates_per_s"]
            out["mfsgd"][f"{label}_t{t}"] = result
            log(f"  mfsgd {label} {t} thread(s): {result['fit_seconds']:.3f} s (median of "
                f"{REPEATS}), "
                f"test RMSE {result['test_rmse']:.4f}")
    return out
