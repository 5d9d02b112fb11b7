"""Untrusted tensor inputs (nested JSON lists) checked against a model's declared tensor input.

Each input is one example without its batch dimension: its shape must be the declared one and
its values numbers of the declared kind (integers for an integer dtype, finite numbers in the
dtype's range). The batch is returned flattened, ``[n, width]``, so it travels through the
micro-batcher like encoded tabular rows; the graph's session reshapes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from inference.errors import InputValidationError
from inference.manifest import TensorInput

_MAX_EXACT = 2**53 - 1


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_tensor(spec: TensorInput, value: Any, index: int) -> np.ndarray:
    """One input as an array of the declared dtype and shape (raises InputValidationError)."""

    def refuse(message: str) -> InputValidationError:
        return InputValidationError(record=index, field=None, message=message)

    want = _shape_text(spec.shape)
    if not isinstance(value, list):
        raise refuse(f"expected a nested list of shape {want}")
    try:
        # Ragged lists raise ValueError; integers past 64 bits make an object array.
        raw = np.asarray(value)
    except (ValueError, OverflowError):
        raise refuse(f"not a rectangular nested list of shape {want}") from None
    if raw.shape != spec.shape:
        raise refuse(f"has shape {_shape_text(raw.shape)}, the model takes {want}")
    # Beyond 2**53 a JSON integer is not exact everywhere; the sealed request is canonical JSON
    # (RFC 8785), which refuses it, so it is refused here, as the caller's error.
    if (
        raw.dtype.kind in "iu"
        and raw.size
        and (int(raw.max()) > _MAX_EXACT or int(raw.min()) < -_MAX_EXACT)
    ):
        raise refuse("an integer is beyond 2**53 - 1, which JSON does not carry exactly")
    dtype = np.dtype(spec.dtype)
    if dtype.kind in "iu":
        if raw.dtype.kind not in "iu":
            raise refuse(f"the model takes {spec.dtype}: every value must be an integer")
        info = np.iinfo(dtype)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise refuse(f"a value is outside the range of {spec.dtype}")
        return raw.astype(dtype)
    if raw.dtype.kind not in "iuf":
        raise refuse(f"the model takes {spec.dtype}: every value must be a number")
    with np.errstate(over="ignore"):
        out = raw.astype(dtype)
    if not bool(np.isfinite(out).all()):
        raise refuse(f"every value must be finite (and within the range of {spec.dtype})")
    return out


def encode_tensors(spec: TensorInput, inputs: Sequence[Any]) -> torch.Tensor:
    """Check untrusted inputs and stack them flattened, ``[n, width]`` of the declared dtype.

    Raises:
        InputValidationError: naming the first bad input and what is wrong with it.
    """
    width = spec.width
    if not inputs:
        return torch.empty((0, width), dtype=getattr(torch, spec.dtype))
    rows = [check_tensor(spec, value, i).reshape(width) for i, value in enumerate(inputs)]
    return torch.from_numpy(np.stack(rows))
