"""What each ``mfsgd`` subcommand does; `mfsgd.cli` parses the arguments and reports errors."""
import os
import re
import shlex
import time
import unicodedata

import numpy as np

from .. import metrics
from ..models import mf as _model
from ..models import load as load_model
from ..models.mf import MatrixFactorization
from ..models.svdpp import SVDpp
from ..data.ratings import Ratings
from ..data.synthetic import make_synthetic

DEMO_NOISE = 0.5
DEMO_PARAMS = dict(n_factors=8, n_epochs=60, learning_rate=0.005, regularization=0.02)
MOVIELENS_NAME = re.compile(r"^(ml-)?(100k|1m|10m|20m|25m|latest|latest-small)$", re.IGNORECASE)

# The models of `--model`.
MODELS = {"mf": MatrixFactorization, "svdpp": SVDpp}

# The model options of the command line: (flag, model parameter, value type, help).
# Their defaults and allowed values are read from the models (model_defaults, model_choices),
# so that they cannot drift from the models'.
MODEL_OPTIONS = (
    ("--factors", "n_factors", int, "number of latent factors k"),
    ("--epochs", "n_epochs", int, "passes over the training ratings"),
    ("--lr", "learning_rate", float, "SGD learning rate"),
    ("--reg", "regularization", float, "L2 regularization of the factors"),
    ("--bias-reg", "bias_regularization", float,
     "L2 regularization of the biases (default: the value of --reg)"),
    ("--schedule", "learning_rate_schedule", str, "learning-rate schedule"),
    ("--lr-decay", "learning_rate_decay", float, "decay of the 'inverse' schedule"),
    ("--init-std", "init_std", float, "standard deviation of the initial factors"),
    ("--implicit-lr", "implicit_learning_rate", float,
     "--model svdpp: learning rate of the implicit factors y (default: the value of --lr)"),
    ("--implicit-reg", "implicit_regularization", float,
     "--model svdpp: L2 regularization of y (default: the value of --reg)"),
    ("--threads", "n_threads", int, "OpenMP threads (default: all cores)"),
)
# Options of SVDpp only.
SVDPP_ONLY = ("implicit_learning_rate", "implicit_regularization")
FLAG_OF = {name: flag for flag, name, _, _ in MODEL_OPTIONS}
# The options that say how to read a ratings file, and read_ratings' values of two of them.
FILE_FLAGS = ("--sep", "--columns", "--encoding", "--header", "--duplicates")
HEADER_CHOICES = {"infer": "infer", "yes": True, "no": False}
DUPLICATE_CHOICES = ("error", "last", "mean")

# `mfsgd search` draws these parameters log-uniformly from [low, high].
LOG_UNIFORM_RANGES = {"learning_rate": (1e-3, 3e-2), "regularization": (1e-3, 2e-1),
                      "bias_regularization": (1e-3, 2e-1)}
# ... and with --model svdpp these too (round 1 of the README's SVD++ search).
SVDPP_LOG_UNIFORM_RANGES = {"implicit_learning_rate": (5e-4, 1e-2),
                            "implicit_regularization": (1e-4, 1e-1)}


class CommandError(Exception):
    """An error to report as one line on stderr."""


def model_defaults():
    """The default value of every parameter of the models, from their signatures (those of
    MatrixFactorization for the parameters both models have)."""
    return {**SVDpp().get_params(), **MatrixFactorization().get_params()}


def model_choices():
    """The allowed values of the MatrixFactorization parameters that take one of a few names."""
    return {"learning_rate_schedule": tuple(_model.LEARNING_RATE_SCHEDULES)}


def option_dest(flag):
    """The argparse attribute name of an option flag (``--bias-reg`` -> ``bias_reg``)."""
    return flag.lstrip("-").replace("-", "_")


def load_data(args):
    """The Ratings named by ``args.data``: 'demo', a MovieLens name, folder or archive, or a
    delimited ratings file (read with ``args.sep``, ``args.columns`` and ``args.encoding``)."""
    source = args.data
    columns = getattr(args, "columns", None)
    columns = None if columns is None else parse_columns(columns)
    if source == "demo":
        _refuse_file_options(args, "the built-in demo data")
        return demo_ratings(getattr(args, "seed", 0))
    from ..data.datasets import load_movielens
    from ..exceptions import NotCachedError
    if MOVIELENS_NAME.match(source) and not os.path.exists(source):
        _refuse_file_options(args, f"MovieLens {source}")
        try:
            return load_movielens(source, data_home=args.data_home, download=args.download)
        except NotCachedError as error:
            raise CommandError(f"MovieLens {error.name} is not in the cache: expected "
                               f"{error.path}. Add --download to download it from {error.url}, "
                               f"or download it by hand and pass the .zip or its extracted "
                               f"folder as DATA.") from None
    if not os.path.exists(source):
        raise CommandError(f"no such file or folder: {source} (DATA is a path, a MovieLens "
                           "name such as ml-100k, or 'demo')")
    if os.path.isdir(source) or source.lower().endswith(".zip") and _is_movielens_zip(source):
        _refuse_file_options(args, f"a MovieLens folder or archive ({source})")
        return load_movielens(source)
    from ..data.io import read_ratings
    options = {"sep": args.sep}
    if columns is not None:
        options["columns"] = columns
    if getattr(args, "encoding", None) is not None:
        options["encoding"] = args.encoding
    if getattr(args, "header", None) is not None:
        options["header"] = HEADER_CHOICES[args.header]
    if getattr(args, "duplicates", None) is not None:
        options["duplicates"] = args.duplicates
    return read_ratings(source, **options)


def parse_columns(text):
    """The ``columns`` argument of read_ratings from the text of ``--columns``: field names
    separated by commas, ``-`` for a field to skip (None)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise CommandError(f"--columns must be a comma list of field names (user, item, rating, "
                           f"timestamp or names from the header line; - skips a field), "
                           f"got {text!r}")
    return tuple(None if part == "-" else part for part in parts)


def _refuse_file_options(args, what):
    for flag in FILE_FLAGS:
        if getattr(args, option_dest(flag), None) is not None:
            raise CommandError(f"{flag} applies to a ratings file, not to {what}")


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
    params = {name: getattr(args, option_dest(flag)) for flag, name, _, _ in MODEL_OPTIONS}
    if args.model != "svdpp":
        for name in SVDPP_ONLY:
            if params.pop(name) is not None:
                raise CommandError(f"{FLAG_OF[name]} applies to --model svdpp")
    return MODELS[args.model](**params, random_state=args.seed, **extra)


def _report_fit(model, train, test, out):
    """Fit `model` on `train` with the epoch table; report RMSE and MAE on `test` (None: no
    test split) and return the test RMSE (None without a test split)."""
    if test is None:
        print(f"training on all {len(train):,} ratings (--test-size 0: no test split, so no "
              "test RMSE)", file=out)
    else:
        print(f"training on {len(train):,} ratings, testing on {len(test):,}", file=out)
    start = time.perf_counter()
    model.set_params(verbose=True)
    model.fit(train, validation=None if model.early_stopping else test)
    seconds = time.perf_counter() - start
    epochs = len(model.history_)
    speed = (f"{epochs} epochs in {seconds:.2f} s, "
             f"{len(train) * epochs / seconds / 1e6:.1f} M updates/s")
    if test is None:
        final = (f"; final training RMSE {model.history_[-1]['train_rmse']:.4f}"
                 if model.history_ else "")
        print(f"trained ({speed}){final}", file=out)
        return None
    rmse, mae = _errors(model, test)
    print(f"test RMSE {rmse:.4f}  MAE {mae:.4f}  ({speed})", file=out)
    return rmse


def _errors(model, ratings):
    users, items, values = ratings.to_arrays()
    predicted = model.predict(users, items)
    return metrics.rmse(values, predicted), metrics.mae(values, predicted)


def run_demo(args, out):
    """Train on the built-in synthetic data and compare the test RMSE with the noise floor."""
    from ..model_selection import train_test_split
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
    """Train on DATA, report RMSE/MAE on a held-out part (unless --test-size 0), optionally
    save and plot."""
    from ..model_selection import train_test_split
    if not 0.0 <= args.test_size < 1.0:
        raise CommandError(f"--test-size must be at least 0 and below 1, got {args.test_size}")
    if args.plot:
        _require_matplotlib()
    data = load_data(args)
    if args.test_size == 0:
        train, test = data, None
    else:
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
        from . import _plots
        held_out = ("validation (held out from training)" if model.early_stopping
                    else "test" if test is not None else None)
        figure = _plots.learning_curve(model.history_, _fit_title(model), held_out,
                                           _best_epoch(model))
        _plots.save_figure(figure, args.plot)
        print(f"wrote {args.plot}", file=out)
    return 0


def _fit_title(model):
    params = model.get_params()
    bias = params["bias_regularization"]
    implicit = "".join(f", {label}={params[name]:g}" for name, label in (
        ("implicit_learning_rate", "implicit lr"), ("implicit_regularization", "implicit reg"))
        if params.get(name) is not None)
    return (("SVD++, " if isinstance(model, SVDpp) else "")
            + f"k={params['n_factors']}, lr={params['learning_rate']:g}, "
            f"reg={params['regularization']:g}"
            + ("" if bias is None else f", bias reg={bias:g}") + implicit
            + f", {params['n_epochs']} epochs" + (" at most (early stopping)"
                                                  if params["early_stopping"] else "")
            + f", {params['learning_rate_schedule']} schedule")


def _best_epoch(model):
    """The epoch whose factors the model keeps (early stopping), else the one with the lowest
    held-out RMSE, or None without held-out ratings."""
    if getattr(model, "best_epoch_", None) is not None:
        return model.best_epoch_
    held_out = [(record["valid_rmse"], record["epoch"]) for record in model.history_
                if "valid_rmse" in record]
    return min(held_out)[1] if held_out else None


def run_evaluate(args, out):
    """RMSE and MAE of a saved model on every rating of DATA; says which of them the model was
    trained on, when the model knows."""
    model = load_model(args.model)
    data = load_data(args)
    rmse, mae = _errors(model, data)
    users, items, values = data.to_arrays()
    user_rows = _rows_of(model.user_ids_, users)
    item_rows = _rows_of(model.item_ids_, items)
    known = (user_rows >= 0) & (item_rows >= 0)
    print(f"{len(data):,} ratings ({known.mean():.1%} with a known user and item): "
          f"RMSE {rmse:.4f}  MAE {mae:.4f}", file=out)
    seen = _training_pairs(model)
    trained = np.zeros(len(data), dtype=bool)
    trained[known] = _in_csr(*seen, user_rows[known], item_rows[known], len(model.item_ids_))
    n_trained = int(trained.sum())
    if n_trained == len(data):
        print(f"note: the model was trained on all {n_trained:,} of these ratings: these are "
              "training errors, not a held-out test", file=out)
    elif n_trained:
        rest = ~trained
        predicted = model.predict(users[rest], items[rest])
        print(f"note: the model was trained on {n_trained:,} of these ratings "
              f"({n_trained / len(data):.1%}); on the other {int(rest.sum()):,}: "
              f"RMSE {metrics.rmse(values[rest], predicted):.4f}  "
              f"MAE {metrics.mae(values[rest], predicted):.4f}", file=out)
    return 0


def _training_pairs(model):
    """The (indptr, indices) CSR of the items each model row rated in training (model row and
    column indices), from the model's fitted state."""
    state = model.fit_state_
    return (np.asarray(state.seen_indptr, dtype=np.int64),
            np.asarray(state.seen_indices, dtype=np.int64))


def _rows_of(known_ids, ids):
    """The position of each of `ids` in `known_ids` (an array of unique ids), -1 when absent."""
    known, ids = np.asarray(known_ids), np.asarray(ids)
    rows = np.full(len(ids), -1, dtype=np.int64)
    if len(known) == 0 or (known.dtype.kind in "iu") != (ids.dtype.kind in "iu"):
        return rows
    if known.dtype.kind not in "iu":
        known, ids = known.astype(str), ids.astype(str)
    order = np.argsort(known, kind="stable")
    ordered = known[order]
    at = np.minimum(np.searchsorted(ordered, ids), len(ordered) - 1)
    found = ordered[at] == ids
    rows[found] = order[at[found]]
    return rows


def _in_csr(indptr, indices, rows, columns, n_columns):
    """Whether each (row, column) pair is stored in the CSR (indptr, indices)."""
    stored_rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    return np.isin(rows * n_columns + columns, stored_rows * n_columns + indices)


def run_recommend(args, out):
    """Print the top-N items of one user of a saved model as aligned columns: rank, item id,
    score and, when saved with the model, title."""
    if args.n < 1:
        raise CommandError(f"-n must be at least 1, got {args.n}")
    model = load_model(args.model)
    user = _typed_id(args.user, model.user_ids_)
    items, scores = model.recommend(user, n=args.n, exclude_seen=not args.include_seen)
    titles = getattr(model, "item_titles_", None) or {}
    print(f"top {len(items)} for user {user}:", file=out)
    rows = [(str(rank), str(item), f"{score:.3f}", titles.get(item) or "")
            for rank, (item, score) in enumerate(zip(items.tolist(), scores.tolist()), start=1)]
    header = ("rank", "item", "score", "title" if any(row[3] for row in rows) else "")
    widths = [max(display_width(row[column]) for row in [header, *rows]) for column in range(3)]
    # Numbers are right-aligned; string ids, like titles, read better left-aligned.
    right = np.asarray(model.item_ids_).dtype.kind in "iu"
    for rank, item, score, title in [header, *rows]:
        item_pad = " " * (widths[1] - display_width(item))
        item = item_pad + item if right else item + item_pad
        line = f"{rank:>{widths[0]}}  {item}  {score:>{widths[2]}}  {title}"
        print(line.rstrip(), file=out)
    return 0


def display_width(text):
    """Columns that `text` takes on a terminal: wide (East Asian) characters take two,
    combining marks and other zero-width characters none."""
    return sum(0 if unicodedata.combining(char) or unicodedata.category(char) in ("Me", "Cf")
               else 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
               for char in text)


def _typed_id(text, known_ids):
    if np.asarray(known_ids).dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            raise CommandError(f"user ids of this model are integers, got {text!r}") from None
    return text


def run_search(args, out):
    """Random search over k, learning rate and regularizations with cross-validation; prints
    every candidate as ``mfsgd train`` flags, optionally saves the refitted best model and
    plots the score against each parameter."""
    from scipy.stats import loguniform

    from ..model_selection import RandomizedSearchCV
    try:
        factors = [int(part) for part in args.factors.split(",") if part.strip()]
    except ValueError:
        factors = []
    if not factors:
        raise CommandError(f"--factors must be a comma list of integers, got {args.factors!r}")
    if args.plot:
        _require_matplotlib()
    data = load_data(args)
    ranges = {**LOG_UNIFORM_RANGES, **(SVDPP_LOG_UNIFORM_RANGES if args.model == "svdpp" else {})}
    space = {"n_factors": factors,
             **{name: loguniform(*bounds) for name, bounds in ranges.items()}}
    search = RandomizedSearchCV(MODELS[args.model](n_epochs=args.epochs, random_state=args.seed),
                                space, n_iter=args.n_iter, cv=args.cv, n_jobs=args.jobs,
                                random_state=args.seed, refit=bool(args.save), verbose=1)
    search.fit(data)
    candidates = list(search.cv_results_["params"])
    scores = np.asarray(search.cv_results_["mean_test_rmse"], dtype=float)
    order = np.argsort(np.where(np.isnan(scores), np.inf, scores), kind="stable")
    print(f"candidates by mean RMSE over {search.n_splits_} folds, as mfsgd train flags:",
          file=out)
    print("rank  mean RMSE  flags", file=out)
    for rank, index in enumerate(order, start=1):
        score = "diverged" if np.isnan(scores[index]) else f"{scores[index]:.4f}"
        print(f"{rank:4d}  {score:>9}  {as_flags(candidates[index])}", file=out)
    print(f"best mean RMSE over {search.n_splits_} folds: {search.best_score_:.4f}; train it "
          "with:", file=out)
    best = {**search.best_params_, "n_epochs": args.epochs}
    model_flag = " --model svdpp" if args.model == "svdpp" else ""
    print(f"  mfsgd train {_data_flags(args)}{model_flag} {as_flags(best)} --seed {args.seed}",
          file=out)
    if args.save:
        model = search.best_estimator_
        titles = getattr(data, "item_titles", None)
        if titles is not None:
            model.item_titles_ = titles
        model.save(args.save)
        print(f"saved the best model, refitted on all {len(data):,} ratings, to {args.save}",
              file=out)
    if args.plot:
        from . import _plots
        figure = _plots.search_scores(
            candidates, scores, names=[name for _, name, _, _ in MODEL_OPTIONS if name in space],
            log_scaled=set(ranges), best=search.best_index_,
            labels={name: f"{name} ({flag})" for name, flag in FLAG_OF.items()},
            title=f"mfsgd search: mean RMSE over {search.n_splits_} folds, "
                  f"{args.epochs} epochs")
        _plots.save_figure(figure, args.plot)
        print(f"wrote {args.plot}", file=out)
    return 0


def as_flags(params):
    """Model parameters as ``mfsgd train`` flags, in the order of MODEL_OPTIONS."""
    order = [name for _, name, _, _ in MODEL_OPTIONS]
    unknown = sorted(set(params) - set(order))
    if unknown:
        raise ValueError(f"no command-line flag for the parameters {unknown}")
    return " ".join(f"{FLAG_OF[name]} {_flag_value(params[name])}"
                    for name in order if name in params)


def _flag_value(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _data_flags(args):
    """DATA and the options needed to read it again, as shell words."""
    words = [args.data]
    for flag in FILE_FLAGS + ("--data-home",):
        value = getattr(args, option_dest(flag), None)
        if value is not None:
            words += [flag, value]
    return " ".join(shlex.quote(word) for word in words)


def run_bench(args, out):
    """Million rating updates per second of one fit epoch at k = 32 and 128, 1 and all threads;
    optionally a bar chart of them."""
    from ._quickbench import quick_benchmark
    if args.plot:
        _require_matplotlib()
    records = quick_benchmark(n_ratings=args.ratings, n_epochs=args.epochs, out=out)
    if args.plot:
        from . import _plots
        figure = _plots.bench_throughput(
            records, title=f"mfsgd bench: {records[0]['ratings']:,} synthetic ratings, best of "
                           f"{args.epochs} epochs")
        _plots.save_figure(figure, args.plot)
        print(f"wrote {args.plot}", file=out)
    return 0


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'mfsgd[plot]'") from None


COMMANDS = {"demo": run_demo, "train": run_train, "evaluate": run_evaluate,
            "recommend": run_recommend, "search": run_search, "bench": run_bench}
