"""Honest evaluation: the published protocol, the comparison, metrics, reports, explanations and the unknown-sample evaluation."""
