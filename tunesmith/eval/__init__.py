"""Evaluation: metrics, tasks, judge, human A/B, reports."""
