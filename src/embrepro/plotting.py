"""One look for every figure in the book: readable in print, labelled, colour-blind safe."""

from __future__ import annotations


def setup() -> None:
    """Seaborn's white-grid theme at a size that stays readable in print; tables shown in full."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    pd.set_option("display.max_colwidth", 400)
    pd.set_option("display.precision", 2)
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (7.5, 4.2),
                         "axes.titleweight": "bold"})


def seed_bars(data, x: str, y: str, hue: str | None = None, ax=None, title: str = "", ylabel: str = ""):
    """Bars of the mean over seeds with the seeds' spread (min-max) as error bars, and the points."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.gca()
    sns.barplot(data=data, x=x, y=y, hue=hue, errorbar=("pi", 100), capsize=0.15, ax=ax, alpha=0.85)
    sns.stripplot(data=data, x=x, y=y, hue=hue, dodge=hue is not None, size=3, ax=ax, legend=False,
                  **({"palette": "dark:black"} if hue else {"color": "black"}))
    ax.set_title(title)
    ax.set_ylabel(ylabel or y)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=20)
    return ax
