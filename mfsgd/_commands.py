"""What each ``mfsgd`` subcommand does; `mfsgd.cli` parses the arguments and reports errors."""
import os
import re
import time

import numpy as np

from . import metrics
from .model import MatrixFactorization
from .ratings import Ratings
from .synthetic import make_synthetic

DEMO_NOISE = 0.5
DEMO_PARAMS = dict(n_factors=8, n_epochs=60, learning_rate=0.005, regularization=0.02)
MOVIELENS_NAME = re.compile(r"^(ml-)?(100k|1m|10m|20m|25m|latest|latest-small)$", re.IGNORECASE)


class CommandError(Exception):
    """An error to report as one line on stderr."""


def load_data(args):
    """The Ratings named by ``args.data``: 'demo', a MovieLens name, folder or archive, or a
    delimited ratings file."""
    source = args.data
    if source == "demo":
        return demo_ratings(getattr(args, "seed", 0))
    from .datasets import _NotCachedError, load_movielens
    if MOVIELENS_NAME.match(source) and not os.path.exists(source):
        try:
            return load_movielens(source, data_home=args.data_home, download=args.download)
        except _NotCachedError as error:
            raise CommandError(f"MovieLens {error.name} is not in the cache: expected "
                               f"{error.path}. Add --download to download it from {error.url}, "
                               f"or download it by hand and pass the .zip or its extracted "
                               f"folder as DATA.") from None
    if not os.path.exists(source):
        raise CommandError(f"no such file or folder: {source} (DATA is a path, a MovieLens "
                           "name such as ml-100k, or 'demo')")
    if os.path.isdir(source) or source.lower().endswith(".zip") and _is_movielens_zip(source):
        return load_movielens(source)
    from .io import read_ratings
    return read_ratings(source, sep=args.sep)


def demo_ratings(seed):
    """The built-in synthetic rating set of ``mfsgd demo``."""
    return Ratings.from_arrays(*make_synthetic(noise=DEMO_NOISE, random_state=seed))


def _is_movielens_zip(path):
    import zipfile
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.rsplit("/", 1)[-1] for name in archive.namelist()}
    except zipfile.BadZipFile:
        raise CommandError(f"{path} is not a valid zip archive") from None
    return bool(names & {"u.data", "ratings.dat", "ratings.csv"})


def _model_from_args(args, **extra):
    return MatrixFactorization(
        n_factors=args.factors, n_epochs=args.epochs, learning_rate=args.lr,
        regularization=args.reg, bias_regularization=args.bias_reg,
        learning_rate_schedule=args.schedule, random_state=args.seed, n_threads=args.threads,
        **extra)


def _report_fit(model, train, test, out):
    print(f"training on {len(train):,} ratings, testing on {len(test):,}", file=out)
    start = time.perf_counter()
    model.set_params(verbose=True)
    model.fit(train, validation=None if model.early_stopping else test)
    seconds = time.perf_counter() - start
    rmse, mae = _errors(model, test)
    epochs = len(model.history_)
    updates = len(train) * epochs / seconds / 1e6
    print(f"test RMSE {rmse:.4f}  MAE {mae:.4f}  ({epochs} epochs in {seconds:.2f} s, "
          f"{updates:.1f} M updates/s)", file=out)
    return rmse


def _errors(model, ratings):
    users, items, values = ratings.to_arrays()
    predicted = model.predict(users, items)
    return metrics.rmse(values, predicted), metrics.mae(values, predicted)


def run_demo(args, out):
    """Train on the built-in synthetic data and compare the test RMSE with the noise floor."""
    from .model_selection import train_test_split
    train, test = train_test_split(demo_ratings(args.seed), test_size=0.2,
                                   random_state=args.seed)
    print("synthetic ratings: 1000 users x 500 items, rank 6 + Gaussian noise "
          f"(sd {DEMO_NOISE}), Zipf item popularity", file=out)
    model = MatrixFactorization(**DEMO_PARAMS, random_state=args.seed, n_threads=args.threads)
    rmse = _report_fit(model, train, test, out)
    print(f"noise floor {DEMO_NOISE:.4f}: test RMSE is {rmse / DEMO_NOISE:.3f} x the best "
          "achievable", file=out)
    return 0


def run_train(args, out):
    """Train on DATA, report RMSE/MAE on a held-out part, optionally save and plot."""
    from .model_selection import train_test_split
    if not 0.0 < args.test_size < 1.0:
        raise CommandError(f"--test-size must be between 0 and 1, got {args.test_size}")
    if args.plot:
        _require_matplotlib()
    data = load_data(args)
    train, test = train_test_split(data, test_size=args.test_size, random_state=args.seed,
                                   strategy=args.split)
    model = _model_from_args(args, early_stopping=args.early_stopping)
    _report_fit(model, train, test, out)
    titles = getattr(data, "item_titles", None)
    if titles is not None:
        model.item_titles_ = titles
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}", file=out)
    if args.plot:
        _plot_history(model.history_, args.plot)
        print(f"wrote {args.plot}", file=out)
    return 0


def run_evaluate(args, out):
    """RMSE and MAE of a saved model on every rating of DATA."""
    model = MatrixFactorization.load(args.model)
    data = load_data(args)
    rmse, mae = _errors(model, data)
    users, items, _ = data.to_arrays()
    known = np.isin(users, model.user_ids_) & np.isin(items, model.item_ids_)
    print(f"{len(data):,} ratings ({known.mean():.1%} with a known user and item): "
          f"RMSE {rmse:.4f}  MAE {mae:.4f}", file=out)
    return 0


def run_recommend(args, out):
    """Print the top-N items of one user of a saved model, with titles when saved."""
    if args.n < 1:
        raise CommandError(f"-n must be at least 1, got {args.n}")
    model = MatrixFactorization.load(args.model)
    user = _typed_id(args.user, model.user_ids_)
    items, scores = model.recommend(user, n=args.n, exclude_seen=not args.include_seen)
    titles = getattr(model, "item_titles_", None) or {}
    print(f"top {len(items)} for user {user}:", file=out)
    for rank, (item, score) in enumerate(zip(items.tolist(), scores.tolist()), start=1):
        title = titles.get(item)
        print(f"{rank:3d}. {item}  {score:.3f}" + (f"  {title}" if title else ""), file=out)
    return 0


def _typed_id(text, known_ids):
    if np.asarray(known_ids).dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            raise CommandError(f"user ids of this model are integers, got {text!r}") from None
    return text


def run_search(args, out):
    """Random search over learning rate and regularization with cross-validation."""
    from scipy.stats import loguniform

    from .model_selection import RandomizedSearchCV
    try:
        factors = [int(part) for part in args.factors.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--factors must be a comma list of integers, got {args.factors!r}") from None
    data = load_data(args)
    space = {"n_factors": factors, "learning_rate": loguniform(1e-3, 3e-2),
             "regularization": loguniform(1e-3, 2e-1), "bias_regularization": loguniform(1e-3, 2e-1)}
    search = RandomizedSearchCV(MatrixFactorization(n_epochs=args.epochs, random_state=args.seed),
                                space, n_iter=args.n_iter, cv=args.cv, n_jobs=args.jobs,
                                random_state=args.seed, refit=False, verbose=1)
    search.fit(data)
    print(f"best mean RMSE over {args.cv} folds: {search.best_score_:.4f}", file=out)
    for name, value in sorted(search.best_params_.items()):
        print(f"  {name} = {value:.4g}" if isinstance(value, float) else f"  {name} = {value}",
              file=out)
    return 0


def run_bench(args, out):
    """Million rating updates per second of one fit epoch at k = 32 and 128, 1 and all threads."""
    from ._quickbench import quick_benchmark
    quick_benchmark(n_ratings=args.ratings, n_epochs=args.epochs, out=out)
    return 0


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'mfsgd[plot]'") from None


def _plot_history(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [record["epoch"] for record in history]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(epochs, [record["train_rmse"] for record in history], label="training")
    if "valid_rmse" in history[0]:
        axes.plot(epochs, [record["valid_rmse"] for record in history], label="validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel("RMSE")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


COMMANDS = {"demo": run_demo, "train": run_train, "evaluate": run_evaluate,
            "recommend": run_recommend, "search": run_search, "bench": run_bench}
