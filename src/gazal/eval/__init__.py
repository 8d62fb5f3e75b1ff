"""Evaluation: generation backends, runner, scoring and metrics."""
