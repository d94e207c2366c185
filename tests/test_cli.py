"""The mfsgd command, every subcommand end to end in a subprocess on small files."""
import inspect
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import mfsgd
from mfsgd import MatrixFactorization, Ratings, make_synthetic


def run(*args, cwd=None):
    # Never from the checkout: `python -m` puts the working directory first on sys.path, and
    # the source tree there has no compiled kernel.
    return subprocess.run([sys.executable, "-m", "mfsgd", *args], capture_output=True, text=True,
                          cwd=cwd or tempfile.gettempdir(), timeout=300)


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    users, items, ratings = make_synthetic(n_users=200, n_items=100, n_ratings=5000, random_state=3)
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    np.savetxt(path, np.column_stack([users, items, np.round(ratings, 2)]), fmt="%g",
               delimiter=",")
    return path


@pytest.fixture(scope="module")
def movielens_folder(tmp_path_factory):
    """A tiny folder in the MovieLens 100K layout (u.data, Latin-1 u.item with titles)."""
    folder = tmp_path_factory.mktemp("ml-100k")
    users, items, ratings = make_synthetic(n_users=60, n_items=40, n_ratings=1500, random_state=5)
    lines = [f"{u + 1}\t{i + 1}\t{int(np.clip(round(r), 1, 5))}\t{880000000 + n}"
             for n, (u, i, r) in enumerate(zip(users, items, ratings))]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    titles = [f"{i}|Film number {i} (Café {i}) (1995)|01-Jan-1995||http://x|0|0" for i in range(1, 41)]
    (folder / "u.item").write_bytes(("\n".join(titles) + "\n").encode("latin-1"))
    return folder


def test_demo_prints_table_and_noise_floor(tmp_path):
    out = ok(run("demo", cwd=tmp_path))
    assert "epoch  train_rmse  valid_rmse" in out and "noise floor 0.5000" in out
    assert float(out.split("test RMSE ")[1].split()[0]) < 0.55


def test_train_on_a_text_file_reports_rmse_and_mae(ratings_csv, tmp_path):
    out = ok(run("train", str(ratings_csv), "--epochs", "5", "--factors", "4",
                 "--test-size", "0.25", cwd=tmp_path))
    assert "testing on 1,250" in out
    rmse, mae = float(out.split("test RMSE ")[1].split()[0]), float(out.split("MAE ")[1].split()[0])
    assert 0 < mae <= rmse < 2


def test_train_save_evaluate_recommend_with_titles(movielens_folder, tmp_path):
    model = tmp_path / "model.npz"
    plot = tmp_path / "curve.png"
    args = ["train", str(movielens_folder), "--epochs", "8", "--factors", "4", "--save",
            str(model), "--split", "user"]
    if has_matplotlib():
        args += ["--plot", str(plot)]
    else:
        plot = None
    out = ok(run(*args, cwd=tmp_path))
    assert "saved the model" in out and model.is_file()
    if plot is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluation = ok(run("evaluate", str(model), str(movielens_folder), cwd=tmp_path))
    assert "1,500 ratings" in evaluation and "RMSE" in evaluation
    top = ok(run("recommend", str(model), "3", "-n", "5", cwd=tmp_path))
    lines = top.strip().splitlines()
    assert lines[0].startswith("top 5 for user 3") and len(lines) == 7
    assert "Café" in top and "Film number" in lines[2]


def test_bench_reports_throughput(tmp_path):
    out = ok(run("bench", "--ratings", "20000", "--epochs", "1", cwd=tmp_path))
    assert "M updates/s" in out
    rows = [line.split() for line in out.splitlines() if line.strip().split()[:1] in (["32"], ["128"])]
    assert len(rows) >= 2 and all(float(row[3]) > 0 for row in rows)


def test_errors_are_one_line_without_traceback(ratings_csv, tmp_path):
    for args, expected in [(("train", str(tmp_path / "missing.csv")), "no such file"),
                           (("train", str(ratings_csv), "--lr", "-1"), "--lr must be > 0"),
                           (("evaluate", str(tmp_path / "none.npz"), "demo"), "none.npz"),
                           (("train", "demo", "--test-size", "2"), "--test-size")]:
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("mfsgd: error:") and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr


def test_uncached_movielens_name_asks_for_the_download_option(tmp_path):
    result = run("train", "ml-1m", "--data-home", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("mfsgd: error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--download" in result.stderr and "download=True" not in result.stderr
    assert str(tmp_path / "cache" / "ml-1m.zip") in result.stderr
    assert not (tmp_path / "cache").exists()


def test_debug_shows_the_traceback(ratings_csv, tmp_path):
    result = run("--debug", "train", str(ratings_csv), "--lr", "-1", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


# ---------------------------------------------------------------- in-process helpers


def main(capsys, *args):
    """Run the command in this process; return (exit code, stdout, stderr)."""
    from mfsgd import cli
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def four_field_csv(tmp_path_factory):
    """A CSV in the layout of MovieLens' ratings.csv: header userId,movieId,rating,timestamp;
    7 distinct movies, 40 distinct users."""
    rng = np.random.default_rng(0)
    pairs = rng.choice(40 * 7, size=200, replace=False)
    lines = ["userId,movieId,rating,timestamp"] + [
        f"{100 + pair // 7},{pair % 7 + 1},{rng.integers(1, 6)}.0,{1_000_000 + n}"
        for n, pair in enumerate(pairs)]
    path = tmp_path_factory.mktemp("four") / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def saved_model(path):
    return MatrixFactorization.load(path)


# ---------------------------------------------------------------- --columns


@pytest.mark.parametrize("columns, n_users, n_items", [
    ("user,item,rating,-", 40, 7),
    ("item,user,rating,timestamp", 7, 40),      # the other way round: the 7 movies are users
    # Header names in `columns` are read_ratings' own names.
    ("userId,movieId,rating,-", 40, 7),
], ids=["roles", "roles-swapped", "header-names"])
def test_columns_option_says_which_field_is_what(columns, n_users, n_items, four_field_csv,
                                                 tmp_path, capsys):
    model = tmp_path / "model.npz"
    code, out, err = main(capsys, "train", four_field_csv, "--columns", columns,
                          "--test-size", "0", "--epochs", "2", "--factors", "2", "--save", model)
    assert code == 0, err
    assert saved_model(model).n_users_ == n_users and saved_model(model).n_items_ == n_items


@pytest.mark.parametrize("args, expected", [
    (("--columns", "user,,rating"), "--columns must be a comma list"),
    (("--columns", ""), "--columns must be a comma list"),
    (("--columns", "user,item,rating"), "--columns applies to a ratings file, not to the built-in demo"),
    (("--sep", ","), "--sep applies to a ratings file"),
    (("--encoding", "latin-1"), "--encoding applies to a ratings file"),
])
def test_file_options_are_checked(args, expected, four_field_csv, capsys):
    data = four_field_csv if "must be" in expected else "demo"
    code, out, err = main(capsys, "train", data, *args, "--epochs", "1")
    assert code == 1 and expected in err and len(err.strip().splitlines()) == 1


def test_encoding_option_reads_a_latin1_file(tmp_path, capsys):
    """A file in Latin-1 (not UTF-8) trains with --encoding; without it the one-line error
    shows the id that is not UTF-8."""
    path = tmp_path / "latin1.csv"
    path.write_text("user,item,rating\nJosé,Café,4\nJosé,Crème,2\nRené,Café,5\n",
                    encoding="latin-1")
    code, out, err = main(capsys, "train", path, "--epochs", "1")
    assert code == 1 and "b'Jos\\xe9' is not valid utf-8" in err
    model = tmp_path / "model.npz"
    code, out, err = main(capsys, "train", path, "--encoding", "latin-1", "--test-size", "0",
                          "--epochs", "2", "--factors", "2", "--save", model)
    assert code == 0, err
    assert saved_model(model).user_ids_.tolist() == ["José", "René"]


# ---------------------------------------------------------------- --test-size 0 and evaluate


def test_test_size_zero_trains_on_everything_and_evaluate_says_so(ratings_csv, tmp_path, capsys):
    model = tmp_path / "all.npz"
    code, out, err = main(capsys, "train", ratings_csv, "--test-size", "0", "--epochs", "3",
                          "--factors", "4", "--save", model)
    assert code == 0, err
    assert "training on all 5,000 ratings" in out and "no test RMSE" in out
    assert "test RMSE" not in out.replace("no test RMSE", "") and "final training RMSE" in out
    assert saved_model(model).n_users_ == 200
    code, out, err = main(capsys, "evaluate", model, ratings_csv)
    assert code == 0, err
    assert "5,000 ratings" in out
    assert "trained on all 5,000 of these ratings: these are training errors" in out


def test_test_size_zero_with_zero_epochs(ratings_csv, capsys):
    code, out, err = main(capsys, "train", ratings_csv, "--test-size", "0", "--epochs", "0")
    assert code == 0, err
    assert "trained (0 epochs" in out


def test_evaluate_scores_the_ratings_the_model_was_not_trained_on(ratings_csv, tmp_path, capsys):
    model = tmp_path / "part.npz"
    code, out, err = main(capsys, "train", ratings_csv, "--test-size", "0.25", "--epochs", "3",
                          "--factors", "4", "--save", model)
    assert code == 0, err
    test_rmse = float(out.split("test RMSE ")[1].split()[0])
    code, out, err = main(capsys, "evaluate", model, ratings_csv)
    assert code == 0, err
    assert "trained on 3,750 of these ratings (75.0%); on the other 1,250: RMSE" in out
    # Ratings of users or items the model never saw are not training ratings either, and the
    # other 1,250 are exactly the test split, so their RMSE is the test RMSE.
    assert float(out.split("on the other 1,250: RMSE ")[1].split()[0]) == pytest.approx(
        test_rmse, abs=1e-4)


def test_evaluate_without_training_ratings_adds_no_note(ratings_csv, tmp_path, capsys):
    model = tmp_path / "model.npz"
    code, out, err = main(capsys, "train", ratings_csv, "--test-size", "0", "--epochs", "1",
                          "--factors", "2", "--save", model)
    assert code == 0, err
    strangers = tmp_path / "strangers.csv"              # ids the model does not know
    strangers.write_text("5001,5001,3\n5002,5002,4\n")
    code, out, err = main(capsys, "evaluate", model, strangers)
    assert code == 0, err
    assert "0.0% with a known user and item" in out and "note:" not in out


# ---------------------------------------------------------------- search


def test_search_prints_flags_that_train_accepts_and_saves_the_best(ratings_csv, tmp_path, capsys):
    model, plot = tmp_path / "best.npz", tmp_path / "search.png"
    args = ["search", ratings_csv, "--n-iter", "3", "--cv", "2", "--epochs", "3",
            "--factors", "4,8", "--save", model]
    if has_matplotlib():
        args += ["--plot", plot]
    code, out, err = main(capsys, *args)
    assert code == 0, err
    assert "best mean RMSE over 2 folds" in out
    command = out.split("train it with:\n")[1].splitlines()[0].split()
    assert command[:3] == ["mfsgd", "train", str(ratings_csv)]
    flags = dict(zip(command[3::2], command[4::2]))
    assert set(flags) == {"--factors", "--epochs", "--lr", "--reg", "--bias-reg", "--seed"}
    best = saved_model(model)
    assert best.n_factors == int(flags["--factors"]) and best.n_epochs == 3
    assert best.learning_rate == pytest.approx(float(flags["--lr"]), rel=1e-3)
    assert best.regularization == pytest.approx(float(flags["--reg"]), rel=1e-3)
    assert best.n_users_ == 200                        # refitted on all the ratings
    rows = [line for line in out.splitlines() if line[:4].strip().isdigit()]
    assert len(rows) == 3 and all("--lr " in row and "--factors " in row for row in rows)
    if has_matplotlib():
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The printed command is one `mfsgd train` accepts.
    code, out, err = main(capsys, *command[1:], "--test-size", "0")
    assert code == 0, err


def test_search_plot_has_a_panel_per_searched_parameter(ratings_csv, tmp_path, capsys,
                                                        monkeypatch):
    pytest.importorskip("matplotlib")
    figures = capture_figures(monkeypatch)
    code, out, err = main(capsys, "search", ratings_csv, "--n-iter", "4", "--cv", "2",
                          "--epochs", "2", "--factors", "4,8", "--plot", tmp_path / "s.png")
    assert code == 0, err
    (figure, _), = figures
    labels = [axes.get_xlabel() for axes in figure.axes]
    assert labels == ["n_factors (--factors)", "learning_rate (--lr)",
                      "regularization (--reg)", "bias_regularization (--bias-reg)"]
    assert [axes.get_xscale() for axes in figure.axes] == ["linear", "log", "log", "log"]
    assert figure.axes[0].get_ylabel() == "mean RMSE"


# ---------------------------------------------------------------- bench


def test_bench_plot_writes_a_bar_chart(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    figures = capture_figures(monkeypatch)
    plot = tmp_path / "bench.png"
    code, out, err = main(capsys, "bench", "--ratings", "5000", "--epochs", "1", "--plot", plot)
    assert code == 0, err
    assert f"wrote {plot}" in out
    (figure, path), = figures
    assert path == str(plot)
    bars = [patch.get_height() for patch in figure.axes[0].patches]
    rates = [float(line.split()[3]) for line in out.splitlines()
             if line.split()[:1] in (["32"], ["128"])]
    assert sorted(bars) == pytest.approx(sorted(rates), abs=0.051)     # printed to 0.1


# ---------------------------------------------------------------- --help and defaults


def option_helps(help_text):
    """{flag: its help text} of every option in an argparse help text."""
    helps, current = {}, None
    for line in help_text.splitlines():
        match = re.match(r"^  (-[\w-]+)", line)
        if match:
            current = match.group(1)
            helps[current] = line
        elif current and line.startswith("      "):
            helps[current] += " " + line.strip()
        else:
            current = None
    return helps


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["evaluate"], ["recommend"],
                                     ["search"], ["bench"]])
def test_help_shows_every_default(command, capsys):
    from mfsgd import cli
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    helps = option_helps(capsys.readouterr().out)
    helps.pop("-h")
    helps.pop("--version", None)
    assert helps
    assert [flag for flag, text in helps.items() if "default: " not in " ".join(text.split())] == []


def test_model_options_take_defaults_and_choices_from_the_model(monkeypatch, capsys):
    from mfsgd import cli
    from mfsgd.models import mf as model_module
    signature = inspect.signature(MatrixFactorization.__init__)
    defaults = dict(signature.parameters)
    monkeypatch.setattr(model_module, "LEARNING_RATE_SCHEDULES",
                        (*model_module.LEARNING_RATE_SCHEDULES, "new-schedule"))
    changed = tuple({"n_factors": 7, "learning_rate": 0.0123}.get(name, p.default)
                    for name, p in defaults.items() if p.default is not p.empty)
    monkeypatch.setattr(MatrixFactorization.__init__, "__defaults__", changed)
    args = cli.build_parser().parse_args(["train", "demo"])
    assert args.factors == 7 and args.lr == 0.0123
    assert args.reg == defaults["regularization"].default
    assert cli.build_parser().parse_args(["train", "demo", "--schedule", "new-schedule"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    helps = option_helps(capsys.readouterr().out)
    assert "(default: 7)" in helps["--factors"] and "(default: 0.0123)" in helps["--lr"]
    assert "new-schedule" in helps["--schedule"]


# ---------------------------------------------------------------- recommend


def test_recommend_aligns_its_columns(movielens_folder, tmp_path, capsys):
    model = tmp_path / "model.npz"
    code, out, err = main(capsys, "train", movielens_folder, "--epochs", "2", "--factors", "2",
                          "--save", model)
    assert code == 0, err
    code, out, err = main(capsys, "recommend", model, "3", "-n", "40", "--include-seen")
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"top \d+ for user 3:", lines[0])
    header, rows = lines[1], lines[2:]
    assert header.split() == ["rank", "item", "score", "title"]
    assert len(rows) == int(lines[0].split()[1]) > 9
    # Every column ends (numbers) or starts (titles) at the header's offset.
    assert {len(row.split("  Film")[0].rstrip()) for row in rows} == {header.index("score") + 5}
    assert {row.index("Film number") for row in rows} == {header.index("title")}
    for word in ("rank", "item"):
        end = header.index(word) + len(word)
        assert all(row[end - 1] != " " and row[end] == " " for row in rows)
    assert {len(row.split()[1]) for row in rows} == {1, 2}      # ids of different widths


def test_recommend_aligns_wide_and_combining_characters(tmp_path, capsys):
    """String ids are padded by the columns a terminal gives them: two for each wide (East
    Asian) character, none for a combining accent."""
    import unicodedata
    items = ["a", "item-b", "日本語", unicodedata.normalize("NFD", "Crème brûlée"), "Ⅻ"]
    path = tmp_path / "wide.csv"
    path.write_text("user,item,rating\n" + "".join(
        f"{user},{item},{1 + (user + n) % 5}\n" for user in range(6)
        for n, item in enumerate(items) if (user + n) % 3), encoding="utf-8")
    model = tmp_path / "model.npz"
    code, out, err = main(capsys, "train", path, "--test-size", "0", "--epochs", "2",
                          "--factors", "2", "--save", model)
    assert code == 0, err
    code, out, err = main(capsys, "recommend", model, "0", "-n", "5", "--include-seen")
    assert code == 0, err
    header, *rows = out.splitlines()[1:]
    assert len(rows) == 5

    def columns_before(line, end):
        text = line[:end]
        return sum(0 if unicodedata.combining(char) else
                   2 if unicodedata.east_asian_width(char) == "W" else 1 for char in text)

    score_column = header.index("score")
    assert {columns_before(row, row.rindex("  ") + 2) for row in rows} == {score_column}


# ---------------------------------------------------------------- pipes


@pytest.fixture(scope="module")
def many_items_model(tmp_path_factory):
    """A saved model with 10,000 items, so that a full top list far exceeds a pipe's buffer."""
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(1)
    items = np.arange(20_000) % 10_000
    users = rng.integers(0, 50, size=items.size)
    keep = np.unique(users * 10_000 + items, return_index=True)[1]
    ratings = Ratings.from_arrays(users[keep], items[keep], rng.integers(1, 6, keep.size))
    model = folder / "many.npz"
    MatrixFactorization(n_factors=2, n_epochs=1, random_state=0).fit(ratings).save(model)
    return model


def pipe_into_head(lines, *args, cwd=None):
    """Run `mfsgd ARGS | head -LINES` in bash with pipefail: the exit code is mfsgd's."""
    command = " ".join(shlex.quote(word) for word in [sys.executable, "-m", "mfsgd", *args])
    return subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -{lines}"],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("head") is None,
                    reason="needs bash and head")
def test_recommend_piped_into_head_exits_quietly(many_items_model, tmp_path):
    result = pipe_into_head(1, "recommend", str(many_items_model), "0", "-n", "10000", cwd=tmp_path)
    assert result.stdout.startswith("top ") and len(result.stdout.splitlines()) == 1
    assert result.stderr == "" and result.returncode == cli_exit_broken_pipe()


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("head") is None,
                    reason="needs bash and head")
def test_train_piped_into_head_exits_quietly(tmp_path):
    data = tmp_path / "tiny.csv"
    rng = np.random.default_rng(0)
    pairs = rng.choice(50 * 30, size=200, replace=False)
    np.savetxt(data, np.column_stack([pairs // 30, pairs % 30, rng.integers(1, 6, 200)]),
               fmt="%d", delimiter=",")
    # 3000 epoch lines, about 170 kB: far more than the pipe and head's buffer hold.
    result = pipe_into_head(2, "train", str(data), "--epochs", "3000", "--factors", "2",
                            "--threads", "1", cwd=tmp_path)
    assert result.stdout.splitlines()[0].startswith("training on ")
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == "" and result.returncode == cli_exit_broken_pipe()


def cli_exit_broken_pipe():
    from mfsgd import cli
    assert cli.EXIT_BROKEN_PIPE == 141                 # 128 + SIGPIPE, as a shell reports it
    return 141


# ---------------------------------------------------------------- the learning curve


def capture_figures(monkeypatch):
    """Make the commands' save_figure record (figure, path) as well as write the file."""
    from mfsgd.cli import _plots
    figures, save = [], _plots.save_figure

    def recording_save(figure, path):
        figures.append((figure, str(path)))
        save(figure, path)
    monkeypatch.setattr(_plots, "save_figure", recording_save)
    return figures


def curve_parts(figure):
    (axes,) = figure.axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    return axes, lines


@pytest.mark.parametrize("options, held_out", [
    ((), "test"),
    (("--early-stopping",), "validation (held out from training)"),
    (("--test-size", "0"), None),
])
def test_learning_curve_title_best_epoch_and_truthful_labels(options, held_out, ratings_csv,
                                                             tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    figures = capture_figures(monkeypatch)
    plot = tmp_path / "curve.png"
    code, out, err = main(capsys, "train", ratings_csv, "--epochs", "12", "--factors", "4",
                          "--lr", "0.03", "--reg", "0.05", "--schedule", "inverse", *options,
                          "--plot", plot)
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure, _), = figures
    axes, lines = curve_parts(figure)
    title = axes.get_title()
    for part in ("k=4", "lr=0.03", "reg=0.05", "12 epochs", "inverse"):
        assert part in title
    labels = [label for label in lines if not label.startswith("_")]
    if held_out is None:
        assert labels == ["training"]
        return
    assert labels[:2] == ["training", held_out]
    (best_label,) = [label for label in labels if label.startswith("best epoch")]
    best = int(best_label.split()[2])
    epochs, held = lines[held_out].get_data()
    assert lines[best_label].get_data()[0].tolist() == [best]
    if options:
        assert "early stopping" in title
        assert best == saved_best_epoch(out)
    else:
        assert best == int(epochs[int(np.argmin(held))])


def saved_best_epoch(table):
    """The last epoch marked best ("*") in the printed epoch table."""
    return max(int(line.split()[0]) for line in table.splitlines()
               if line.rstrip().endswith("*") and line.split()[0].isdigit())


# ---------------------------------------------------------------- the README


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(title):
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}")
    return text[start:text.index("\n## ", start + 1)]


@pytest.mark.skipif(not README.is_file(), reason="not running from a source checkout")
def test_readme_command_lines_are_valid_commands():
    from mfsgd import cli
    section = readme_section("Command line")
    lines = [line.strip() for line in re.findall(r"^ *(mfsgd .*)$", section, re.MULTILINE)]
    assert len(lines) >= 10
    for line in lines:
        words = shlex.split(line.split(" | ")[0], comments=True)
        if "--help" in words:
            continue
        cli.build_parser().parse_args(words[1:])      # exits (fails the test) when invalid


@pytest.mark.skipif(not README.is_file(), reason="not running from a source checkout")
def test_readme_set_up_names_the_movielens_variable_the_tests_read():
    conftest = (Path(__file__).parent / "conftest.py").read_text(encoding="utf-8")
    assert "MFSGD_ML100K" in conftest and "MFSGD_ML100K" in readme_section("Set-up")


# ---------------------------------------------------------------- --model svdpp


def test_svdpp_train_save_evaluate_recommend(ratings_csv, tmp_path, capsys):
    model = tmp_path / "svdpp.npz"
    code, out, err = main(capsys, "train", ratings_csv, "--model", "svdpp", "--epochs", "3",
                          "--factors", "4", "--implicit-lr", "0.004", "--implicit-reg", "0.01",
                          "--save", model)
    assert code == 0, err
    assert "test RMSE" in out
    saved = mfsgd.load(model)
    assert type(saved) is mfsgd.SVDpp
    assert (saved.implicit_learning_rate, saved.implicit_regularization) == (0.004, 0.01)
    code, out, err = main(capsys, "evaluate", model, ratings_csv)
    assert code == 0, err and "trained on 4,000 of these ratings" in out
    code, out, err = main(capsys, "recommend", model, "3", "-n", "2")
    assert code == 0, err
    assert out.startswith("top 2 for user 3:")


def test_implicit_options_need_svdpp(ratings_csv, capsys):
    code, out, err = main(capsys, "train", ratings_csv, "--implicit-reg", "0.1")
    assert code == 1 and "--implicit-reg applies to --model svdpp" in err


def test_svdpp_search_draws_the_implicit_parameters(ratings_csv, capsys):
    code, out, err = main(capsys, "search", ratings_csv, "--model", "svdpp", "--n-iter", "2",
                          "--cv", "2", "--epochs", "2", "--factors", "4")
    assert code == 0, err
    command = out.split("train it with:\n")[1].splitlines()[0].split()
    assert command[3:5] == ["--model", "svdpp"]
    flags = dict(zip(command[5::2], command[6::2]))
    assert {"--implicit-lr", "--implicit-reg"} <= set(flags)
    low, high = 5e-4, 1e-2
    assert low <= float(flags["--implicit-lr"]) <= high
    code, out, err = main(capsys, *command[1:], "--test-size", "0")
    assert code == 0, err


def _tsv(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_errors_name_the_flags_not_the_python_arguments(tmp_path):
    data = _tsv(tmp_path, "r.tsv", [f"{u}\t{u % 7}\t{1 + u % 5}" for u in range(40)])
    for flags, expected in [(["--threads", "0"], "mfsgd: error: --threads must be >= 1, got 0"),
                            (["--lr", "-1"], "mfsgd: error: --lr must be > 0, got -1.0"),
                            (["--model", "svdpp", "--schedule", "adagrad"],
                             "mfsgd: error: --schedule adagrad is not available for SVDpp"),
                            (["--columns", "user,item"], "mfsgd: error: --columns must name")]:
        result = run("train", data, *flags)
        assert result.returncode == 1 and expected in result.stderr, (flags, result.stderr)
        assert "n_threads" not in result.stderr and "learning_rate" not in result.stderr
    bad_rating = _tsv(tmp_path, "x.tsv", ["1\t1\t5", "2\t2\tfive", "3\t3\t4"])
    result = run("train", bad_rating)
    assert result.returncode == 1 and "pass --columns)" in result.stderr, result.stderr


def test_duplicates_flag_combines_ratings_the_error_suggests_it(tmp_path):
    data = _tsv(tmp_path, "d.tsv", ["1\t1\t5", "1\t1\t3"] + [f"{u}\t{u}\t4" for u in range(2, 30)])
    result = run("train", data, "--test-size", "0")
    assert result.returncode == 1, result.stderr
    assert "pass --duplicates last or mean to combine them" in result.stderr
    model = tmp_path / "m.npz"
    assert ok(run("train", data, "--test-size", "0", "--duplicates", "mean", "--epochs", "2",
                  "--save", str(model)))
    assert mfsgd.load(str(model)).n_users_ == 29


def test_header_flag_reads_or_keeps_the_first_line(tmp_path):
    # A first line of numbers is data to "infer"; --header yes takes it for column names.
    data = _tsv(tmp_path, "h.tsv", ["1\t2\t3"] + [f"{u}\t{u % 5}\t{1 + u % 5}" for u in range(10, 40)])
    with_header, without = tmp_path / "a.npz", tmp_path / "b.npz"
    assert ok(run("train", data, "--test-size", "0", "--epochs", "1", "--header", "yes",
                  "--save", str(with_header)))
    assert ok(run("train", data, "--test-size", "0", "--epochs", "1", "--save", str(without)))
    assert mfsgd.load(str(with_header)).n_users_ == 30
    assert mfsgd.load(str(without)).n_users_ == 31
    named = _tsv(tmp_path, "n.tsv", ["user\titem\trating", "1\t1\t5"])
    result = run("train", named, "--header", "no")
    assert result.returncode == 1 and "line 1: rating 'rating' is not a number" in result.stderr
    assert "pass --columns)" in result.stderr, result.stderr


def test_in_flags_rewrites_argument_names_only():
    from mfsgd.cli._messages import in_flags
    assert in_flags("n_threads must be >= 1, got 0") == "--threads must be >= 1, got 0"
    assert in_flags("f.csv, line 1: bad (if line 1 is a header, pass header=True)") == \
        "f.csv, line 1: bad (if line 1 is a header, pass --header yes)"
    assert in_flags("x; pass encoding=)") == "x; pass --encoding)"
    # Paths and other words that merely contain a name stay as they are.
    for text in ("/data/columns=1.csv, line 2: empty user", "sep_columns are fine",
                 "regularization_path must exist"):
        assert in_flags(text) == text
