"""Choosing where models run: CUDA when present, else CPU, unless overridden."""

from __future__ import annotations

import re

import torch

from inference.errors import DeviceError

_CUDA_RE = re.compile(r"cuda(?::(\d{1,3}))?")


def select_device(preference: str = "auto") -> torch.device:
    """Resolve a device preference.

    Args:
        preference: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        The device to use.

    Raises:
        DeviceError: (a ``ValueError``) when CUDA is asked for but not available, the GPU index
            does not exist, or the preference is malformed.
    """
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cpu":
        return torch.device("cpu")
    match = _CUDA_RE.fullmatch(preference)
    if match is None:
        raise DeviceError(f"unknown device {preference!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was requested but CUDA is not available")
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        raise DeviceError(f"device {preference!r} does not exist on this machine")
    return torch.device(preference)
