"""Evaluation: the runner, scoring, metrics and results (generation lives in :mod:`gazal.generation`)."""
