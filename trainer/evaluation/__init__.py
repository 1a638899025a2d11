"""Honest evaluation: the published protocol, the comparison, metrics, reports, explanations, unknown samples."""
