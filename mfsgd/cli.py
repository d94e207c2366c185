"""The ``mfsgd`` command line: ``mfsgd demo`` and ``mfsgd train DATA``."""
import argparse
import sys
import time

import numpy as np

from . import __version__
from .model import MatrixFactorization
from .synthetic import make_synthetic

DEMO_NOISE = 0.5
DEMO_PARAMS = dict(n_factors=8, n_epochs=60, learning_rate=0.005, regularization=0.02)


class CommandError(Exception):
    """An error to report as one line on stderr."""


def build_parser():
    """Return the argument parser of the ``mfsgd`` command."""
    parser = argparse.ArgumentParser(
        prog="mfsgd", description="Matrix factorization by stochastic gradient descent.")
    parser.add_argument("--version", action="version", version=f"mfsgd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train on built-in synthetic ratings (no download)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    demo.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")

    train = commands.add_parser("train", help="train on a ratings file and report held-out RMSE")
    train.add_argument("data", help="delimited text file of user,item,rating[,timestamp], or 'demo'")
    train.add_argument("--sep", default=None, help="field separator (default: inferred)")
    train.add_argument("--factors", type=int, default=100)
    train.add_argument("--epochs", type=int, default=60)
    train.add_argument("--lr", type=float, default=0.007, help="learning rate")
    train.add_argument("--reg", type=float, default=0.08, help="regularization")
    train.add_argument("--test-size", type=float, default=0.2, help="held-out fraction")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None)
    return parser


def _split(n, test_size, seed):
    """Random (train, test) positions with a `test_size` fraction held out."""
    if not 0.0 < test_size < 1.0:
        raise CommandError(f"--test-size must be between 0 and 1, got {test_size}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_size)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _take(triplets, positions):
    return tuple(np.asarray(a)[positions] for a in triplets)


def _read_text_ratings(path, sep):
    """(users, items, ratings) of a delimited file with integer ids."""
    try:
        table = np.loadtxt(path, delimiter=sep, usecols=(0, 1, 2), dtype=np.float64, ndmin=2)
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error}") from None
    except ValueError as error:
        raise CommandError(f"cannot parse {path}: {error}") from None
    if len(table) == 0:
        raise CommandError(f"{path} holds no ratings")
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2]


def _fit_and_report(model, train, test, out):
    print(f"training on {len(train[2]):,} ratings, testing on {len(test[2]):,}", file=out)
    start = time.perf_counter()
    model.set_params(verbose=True)
    model.fit(train, validation=test)
    seconds = time.perf_counter() - start
    rmse = model.score(test)
    users, items, values = test
    mae = float(np.mean(np.abs(model.predict(users, items) - values)))
    updates = len(train[2]) * model.n_epochs / seconds / 1e6
    print(f"test RMSE {rmse:.4f}  MAE {mae:.4f}  ({seconds:.2f} s, {updates:.1f} M updates/s)",
          file=out)
    return rmse


def run_demo(args, out=sys.stdout):
    """Train on the built-in synthetic data and compare the test RMSE with the noise floor."""
    users, items, ratings = make_synthetic(noise=DEMO_NOISE, random_state=args.seed)
    train_pos, test_pos = _split(len(ratings), 0.2, args.seed)
    data = (users, items, ratings)
    print("synthetic ratings: 1000 users x 500 items, rank 6 + Gaussian noise "
          f"(sd {DEMO_NOISE}), Zipf item popularity", file=out)
    model = MatrixFactorization(**DEMO_PARAMS, random_state=args.seed, n_threads=args.threads)
    rmse = _fit_and_report(model, _take(data, train_pos), _take(data, test_pos), out)
    print(f"noise floor {DEMO_NOISE:.4f}: test RMSE is {rmse / DEMO_NOISE:.3f} x the best "
          "achievable", file=out)
    return 0


def run_train(args, out=sys.stdout):
    """Train on a file (or the demo data) and report RMSE on a held-out fraction."""
    if args.data == "demo":
        data = make_synthetic(noise=DEMO_NOISE, random_state=args.seed)
    else:
        data = _read_text_ratings(args.data, args.sep)
    train_pos, test_pos = _split(len(data[2]), args.test_size, args.seed)
    model = MatrixFactorization(n_factors=args.factors, n_epochs=args.epochs,
                                learning_rate=args.lr, regularization=args.reg,
                                random_state=args.seed, n_threads=args.threads)
    _fit_and_report(model, _take(data, train_pos), _take(data, test_pos), out)
    return 0


COMMANDS = {"demo": run_demo, "train": run_train}


def main(argv=None):
    """Entry point of the ``mfsgd`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CommandError, ValueError, TypeError, OSError, FloatingPointError) as error:
        if args.debug:
            raise
        print(f"mfsgd: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfsgd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
