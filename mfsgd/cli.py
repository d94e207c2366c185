"""The ``mfsgd`` command line: argument parsing, dispatch and one-line error reporting."""
import argparse
import sys

from . import __version__
from . import _commands

SCHEDULES = ("constant", "inverse", "adagrad")
SPLITS = ("random", "user", "time")


def _add_data_options(parser):
    parser.add_argument("data", help="a ratings file (.csv/.tsv/.dat, also .gz/.zip), a MovieLens "
                        "folder or archive, a MovieLens name (ml-100k, ml-1m, ml-10m, ml-20m, "
                        "ml-25m, ml-latest-small, ml-latest) or 'demo'")
    parser.add_argument("--sep", default=None, help="field separator of a ratings file "
                        "(default: inferred)")
    parser.add_argument("--data-home", default=None, help="MovieLens cache folder (default: "
                        "$MFSGD_DATA or ~/mfsgd_data)")
    parser.add_argument("--download", action="store_true",
                        help="download a named MovieLens set when it is not cached")


def _add_model_options(parser, epochs=60):
    parser.add_argument("--factors", type=int, default=100, help="n_factors (default 100)")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"n_epochs (default {epochs})")
    parser.add_argument("--lr", type=float, default=0.007, help="learning rate (default 0.007)")
    parser.add_argument("--reg", type=float, default=0.08, help="regularization (default 0.08)")
    parser.add_argument("--bias-reg", type=float, default=None,
                        help="bias regularization (default: --reg)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant",
                        help="learning-rate schedule")
    parser.add_argument("--seed", type=int, default=0, help="random_state of split and model")
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")


def build_parser():
    """Return the argument parser of the ``mfsgd`` command."""
    parser = argparse.ArgumentParser(
        prog="mfsgd", description="Matrix factorization recommenders trained by SGD.")
    parser.add_argument("--version", action="version", version=f"mfsgd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train on built-in synthetic ratings (no download)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    demo.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")

    train = commands.add_parser("train", help="train, report held-out RMSE/MAE, optionally save")
    _add_data_options(train)
    _add_model_options(train)
    train.add_argument("--test-size", type=float, default=0.2, help="held-out fraction")
    train.add_argument("--split", choices=SPLITS, default="random",
                       help="how to hold out the test ratings (default random)")
    train.add_argument("--early-stopping", action="store_true",
                       help="stop when the validation RMSE stops improving, keep the best epoch")
    train.add_argument("--save", metavar="MODEL", default=None,
                       help="save the model trained on the training part (.npz)")
    train.add_argument("--plot", metavar="FILE.png", default=None,
                       help="plot train/validation RMSE per epoch (needs matplotlib)")

    evaluate = commands.add_parser("evaluate", help="RMSE and MAE of a saved model on DATA")
    evaluate.add_argument("model", help="a model saved by `mfsgd train --save`")
    _add_data_options(evaluate)

    recommend = commands.add_parser("recommend", help="top-N items for a user of a saved model")
    recommend.add_argument("model", help="a model saved by `mfsgd train --save`")
    recommend.add_argument("user", help="raw user id")
    recommend.add_argument("-n", type=int, default=10, help="number of items (default 10)")
    recommend.add_argument("--include-seen", action="store_true",
                           help="also list items the user rated in training")

    search = commands.add_parser("search", help="random search with cross-validation")
    _add_data_options(search)
    search.add_argument("--n-iter", type=int, default=10, help="configurations to try")
    search.add_argument("--cv", type=int, default=3, help="cross-validation folds")
    search.add_argument("--epochs", type=int, default=30, help="n_epochs of every candidate")
    search.add_argument("--factors", type=str, default="50,100,200",
                        help="comma list of n_factors to draw from")
    search.add_argument("--jobs", type=int, default=1, help="folds trained at once (threads)")
    search.add_argument("--seed", type=int, default=0)

    bench = commands.add_parser("bench", help="the quick throughput benchmark")
    bench.add_argument("--ratings", type=int, default=1_000_000, help="synthetic ratings")
    bench.add_argument("--epochs", type=int, default=3)
    return parser


def main(argv=None):
    """Entry point of the ``mfsgd`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _commands.COMMANDS[args.command](args, sys.stdout)
    except (_commands.CommandError, ValueError, TypeError, KeyError, OSError, ImportError,
            FloatingPointError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mfsgd: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfsgd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
