"""Peers measured beside Herald in the same run: the tutorial-style baseline and the ceiling."""
