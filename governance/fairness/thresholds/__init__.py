"""Fairness thresholds: the policy file's bounds, their audited versions, their anchor."""
