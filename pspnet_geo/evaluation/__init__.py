"""Scoring predictions against truth: pixel metrics from a confusion matrix, and their report."""
