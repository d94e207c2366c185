"""The ``mfsgd`` command line: argument parsing, dispatch and one-line error reporting."""
import argparse
import os
import sys

from .._version import __version__
from . import _commands, _messages
from ._commands import DUPLICATE_CHOICES, HEADER_CHOICES

SPLITS = ("random", "user", "time")
# What a shell reports for a process killed by SIGPIPE (128 + 13): the exit code of Unix tools
# whose reader went away, as in `mfsgd recommend ... | head -1`.
EXIT_BROKEN_PIPE = 141


class _HelpWithDefaults(argparse.HelpFormatter):
    """Help text that ends every option's description with its default, unless the text
    already says it: the value, or "off" for a flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text:
            return text
        default = ("on" if action.default else "off") if action.nargs == 0 else "%(default)s"
        return f"{text} (default: {default})"


def _add_command(commands, name, help_text, description=None):
    return commands.add_parser(name, help=help_text, description=description or help_text,
                               formatter_class=_HelpWithDefaults)


def _add_data_options(parser):
    parser.add_argument("data", help="a ratings file (.csv/.tsv/.dat, also .gz/.zip), a MovieLens "
                        "folder or archive, a MovieLens name (ml-100k, ml-1m, ml-10m, ml-20m, "
                        "ml-25m, ml-latest-small, ml-latest) or 'demo'")
    parser.add_argument("--sep", default=None, help="field separator of a ratings file "
                        "(default: inferred)")
    parser.add_argument("--columns", metavar="NAMES", default=None,
                        help="the fields of a ratings file, in order, separated by commas: "
                        "user, item, rating, timestamp, or names from its header line "
                        "(userId,movieId,rating,-); - skips a field (default: inferred from the "
                        "header line, else from the number of fields)")
    parser.add_argument("--encoding", default=None, help="text encoding of a ratings file, "
                        "for example latin-1 (default: utf-8)")
    parser.add_argument("--header", choices=HEADER_CHOICES, default=None,
                        help="whether the first line of a ratings file holds column names "
                        "(default: infer, which takes a first line with numeric ids for data)")
    parser.add_argument("--duplicates", choices=DUPLICATE_CHOICES, default=None,
                        help="several ratings of one user and item in a ratings file: an "
                        "error, or keep the last one, or their mean (default: error)")
    parser.add_argument("--data-home", default=None, help="MovieLens cache folder (default: "
                        "$MFSGD_DATA or ~/mfsgd_data)")
    parser.add_argument("--download", action="store_true",
                        help="download a named MovieLens set when it is not cached")


def _add_model_choice(parser):
    parser.add_argument("--model", choices=tuple(_commands.MODELS), default="mf",
                        help="mf: biased matrix factorization; svdpp: SVD++ (also describes a "
                        "user by the items they rated)")


def _add_model_options(parser):
    """The model options, with the models' own defaults and allowed values."""
    _add_model_choice(parser)
    defaults = _commands.model_defaults()
    choices = _commands.model_choices()
    for flag, name, kind, help_text in _commands.MODEL_OPTIONS:
        parser.add_argument(flag, type=kind, default=defaults[name], choices=choices.get(name),
                            help=help_text)
    _add_seed(parser, "seed of the split and of the model")


def _add_seed(parser, help_text):
    parser.add_argument("--seed", type=int, default=0, help=help_text)


def _add_plot(parser, what):
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help=f"write {what} to FILE.png (needs matplotlib; default: no plot)")


def build_parser():
    """Return the argument parser of the ``mfsgd`` command."""
    parser = argparse.ArgumentParser(
        prog="mfsgd", description="Matrix factorization recommenders trained by SGD.",
        formatter_class=_HelpWithDefaults)
    parser.add_argument("--version", action="version", version=f"mfsgd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _add_command(commands, "demo", "train on built-in synthetic ratings (no download)")
    _add_seed(demo, "seed of the data and of the model")
    demo.add_argument("--threads", type=int, default=_commands.model_defaults()["n_threads"],
                      help="OpenMP threads (default: all cores)")

    train = _add_command(commands, "train", "train, report held-out RMSE/MAE, optionally save")
    _add_data_options(train)
    _add_model_options(train)
    train.add_argument("--test-size", type=float, default=0.2,
                       help="held-out fraction of the ratings; 0 trains on all of them, without "
                       "test RMSE")
    train.add_argument("--split", choices=SPLITS, default="random",
                       help="how to hold out the test ratings")
    train.add_argument("--early-stopping", action="store_true",
                       default=_commands.model_defaults()["early_stopping"],
                       help="hold out part of the training ratings, stop when their RMSE stops "
                       "improving and keep the best epoch")
    train.add_argument("--save", metavar="MODEL", default=None,
                       help="save the trained model to MODEL (.npz; default: not saved)")
    _add_plot(train, "the training and held-out RMSE per epoch")

    evaluate = _add_command(commands, "evaluate", "RMSE and MAE of a saved model on DATA")
    evaluate.add_argument("model", help="a model saved by `mfsgd train --save`")
    _add_data_options(evaluate)

    recommend = _add_command(commands, "recommend", "top-N items for a user of a saved model")
    recommend.add_argument("model", help="a model saved by `mfsgd train --save`")
    recommend.add_argument("user", help="raw user id")
    recommend.add_argument("-n", type=int, default=10, help="number of items")
    recommend.add_argument("--include-seen", action="store_true",
                           help="also list items the user rated in training")

    ranges = ", ".join(f"{name} {low:g}-{high:g}"
                       for name, (low, high) in _commands.LOG_UNIFORM_RANGES.items())
    svdpp_ranges = ", ".join(f"{name} {low:g}-{high:g}" for name, (low, high)
                             in _commands.SVDPP_LOG_UNIFORM_RANGES.items())
    search = _add_command(
        commands, "search", "random search with cross-validation",
        description="Random search with cross-validation: n_factors from --factors, and "
                    f"log-uniformly {ranges} (with --model svdpp also {svdpp_ranges}). Prints "
                    "every candidate as `mfsgd train` flags.")
    _add_data_options(search)
    _add_model_choice(search)
    search.add_argument("--n-iter", type=int, default=10, help="configurations to try")
    search.add_argument("--cv", type=int, default=3, help="cross-validation folds")
    search.add_argument("--epochs", type=int, default=30, help="n_epochs of every candidate")
    search.add_argument("--factors", type=str, default="50,100,200",
                        help="comma list of n_factors to draw from")
    search.add_argument("--jobs", type=int, default=1, help="folds trained at once (threads)")
    _add_seed(search, "seed of the draws, the folds and the models")
    search.add_argument("--save", metavar="MODEL", default=None,
                        help="refit the best configuration on all of DATA and save it to MODEL "
                        "(.npz; default: no refit)")
    _add_plot(search, "the mean RMSE against each searched parameter")

    bench = _add_command(commands, "bench", "the quick throughput benchmark")
    bench.add_argument("--ratings", type=int, default=1_000_000, help="synthetic ratings")
    bench.add_argument("--epochs", type=int, default=3, help="epochs per fit (the best counts)")
    _add_plot(bench, "a bar chart of the throughput")
    return parser


def main(argv=None):
    """Entry point of the ``mfsgd`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = _commands.COMMANDS[args.command](args, sys.stdout)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_gone()
    except (_commands.CommandError, ValueError, TypeError, KeyError, OSError, ImportError,
            FloatingPointError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mfsgd: error: {_messages.in_flags(str(message))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfsgd: interrupted", file=sys.stderr)
        return 130


def _reader_gone():
    """Stop quietly when the reader of stdout has gone (``| head``), as Unix tools do.

    Python flushes stdout again at exit and would report the broken pipe there, so stdout is
    pointed at the null device first.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, ValueError, OSError):
        pass                                  # stdout is not a file (e.g. replaced in tests)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
