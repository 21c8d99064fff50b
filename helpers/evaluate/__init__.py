"""Hearing whole recordings, analysis, plots, widgets and every results table."""
