"""Warden: the governance service around the inference core."""

__version__ = "0.1.0"
