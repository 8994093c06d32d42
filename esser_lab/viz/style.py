"""The book's matplotlib style: white figure backgrounds so figures stay readable in dark mode."""

from __future__ import annotations


def use_book_style() -> None:
    """Set white face colours and a compact default size for every later figure."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.facecolor": "white",
            "figure.dpi": 100,
            "figure.figsize": (6.0, 4.0),
            "image.interpolation": "nearest",
        }
    )
