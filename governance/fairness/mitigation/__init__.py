"""Mitigation: a group-threshold rule, fitted and served as a new model version."""
