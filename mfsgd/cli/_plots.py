"""The figures of the command line's ``--plot`` options (matplotlib, an optional extra).

Figures are built with matplotlib's object interface, without pyplot, so that nothing here
selects a GUI backend or keeps figures alive in a global registry.
"""


def _figure(width, height):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure, path):
    """Write `figure` to `path` (the format follows the file name, e.g. .png)."""
    figure.savefig(path, dpi=100)


def learning_curve(history, title, held_out_label, best_epoch):
    """Training RMSE and held-out RMSE per epoch.

    Parameters
    ----------
    history : list of dict
        A model's ``history_``: "epoch", "train_rmse" and, with held-out ratings, "valid_rmse".
    title : str
        The figure title (the main parameters of the fit).
    held_out_label : str or None
        Legend label of the "valid_rmse" curve, e.g. "test" or "validation"; None when the
        history has no held-out ratings.
    best_epoch : int or None
        The epoch to mark on the held-out curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _figure(6.4, 4.2)
    axes = figure.add_subplot()
    epochs = [record["epoch"] for record in history]
    axes.plot(epochs, [record["train_rmse"] for record in history], label="training")
    if held_out_label is not None:
        held_out = {record["epoch"]: record["valid_rmse"] for record in history}
        axes.plot(epochs, [held_out[epoch] for epoch in epochs], label=held_out_label)
        if best_epoch in held_out:
            axes.plot([best_epoch], [held_out[best_epoch]], marker="o", linestyle="none",
                      color="black", label=f"best epoch {best_epoch} "
                                           f"({held_out_label.split()[0]} RMSE "
                                           f"{held_out[best_epoch]:.4f})")
            axes.axvline(best_epoch, color="black", linewidth=0.8, linestyle=":")
    from matplotlib.ticker import MaxNLocator
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("RMSE")
    axes.set_title(title, fontsize="medium")
    axes.legend()
    return figure


def search_scores(candidates, scores, names, log_scaled, best, labels, title):
    """Mean cross-validated score of every candidate against each searched parameter.

    Parameters
    ----------
    candidates : list of dict
        The parameters of each candidate.
    scores : sequence of float
        The candidates' scores (NaN for a candidate that failed; left out of the plot).
    names : list of str
        The parameters to plot, in panel order; those that took a single value are left out.
    log_scaled : set of str
        Parameters drawn log-uniformly, shown on a logarithmic axis.
    best : int
        Index of the best candidate, marked in every panel.
    labels : dict of str to str
        Axis label of each parameter (its name when absent).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        One panel per parameter that took more than one value.
    """
    from matplotlib.ticker import NullFormatter
    names = [name for name in names if len({candidate[name] for candidate in candidates}) > 1]
    figure = _figure(3.2 * max(len(names), 1), 3.4)
    figure.suptitle(title, fontsize="medium")
    finite = [i for i, score in enumerate(scores) if score == score]
    for column, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), column + 1, sharey=figure.axes[0]
                                  if figure.axes else None)
        axes.scatter([candidates[i][name] for i in finite], [scores[i] for i in finite],
                     s=18, alpha=0.7)
        axes.scatter([candidates[best][name]], [scores[best]], marker="*", s=150,
                     color="black", label="best")
        if name in log_scaled:
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(NullFormatter())    # labelled decades only
        axes.set_xlabel(labels.get(name, name))
        if column == 0:
            axes.set_ylabel("mean RMSE")
            axes.legend()
    return figure


def bench_throughput(records, title):
    """Million rating updates per second per k, one bar per thread count.

    Parameters
    ----------
    records : list of dict
        The records of ``mfsgd.cli._quickbench.quick_benchmark``: "k", "threads", "mupd_s".
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _figure(6.4, 4.2)
    axes = figure.add_subplot()
    factors = sorted({record["k"] for record in records})
    threads = sorted({record["threads"] for record in records})
    width = 0.8 / len(threads)
    for position, count in enumerate(threads):
        rates = {record["k"]: record["mupd_s"] for record in records
                 if record["threads"] == count}
        xs = [i + (position - (len(threads) - 1) / 2) * width for i in range(len(factors))]
        bars = axes.bar(xs, [rates.get(k, 0.0) for k in factors], width,
                        label=f"{count} thread{'s' if count > 1 else ''}")
        axes.bar_label(bars, fmt="%.1f", fontsize="small")
    axes.set_xticks(range(len(factors)), [f"k = {k}" for k in factors])
    axes.set_ylabel("million rating updates / s")
    axes.set_title(title, fontsize="medium")
    axes.legend()
    return figure
