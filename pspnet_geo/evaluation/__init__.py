"""Scoring predictions against truth: pixel metrics from a confusion matrix, and their report."""

from pspnet_geo.evaluation.api import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
