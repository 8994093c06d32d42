"""Figures for the book: image grids, plots and ipywidgets explorers with static fallbacks."""
