"""Fairness: audit a model's predictions for bias, gate deployment on it, and mitigate it.

- :mod:`governance.fairness.metrics`: ``audit_predictions`` (per-group metrics, disparity
  measures, bootstrap intervals) and ``evaluate_thresholds`` (the deployment gate).
- :mod:`governance.fairness.result`: the frozen result tree and its JSON ``to_dict()``.
- :mod:`governance.fairness.fastpath`: group-wise confusion counts with ``np.bincount``; the
  same numbers as Fairlearn's ``MetricFrame``, for large audits and for the bootstrap.
- :mod:`governance.fairness.thresholds.bounds`: the ``policies/fairness.yaml`` thresholds.
- :mod:`governance.fairness.mitigation.group_rule`: Fairlearn ``ThresholdOptimizer`` exported as a
  JSON post-processing spec that the torch-only serving core can apply.

Errors are in :mod:`governance.fairness.errors`. This package has no database or API code.
"""
