"""The randomized thresholds' tie-break on the predict path: one secret draw per data subject.

A mitigated model decides some rows by a draw ``u`` against a probability. If ``u`` were a
function of the record alone, a client could compute it offline and nudge the record (hours
40 → 40.0002) until the draw favours it. So the draw is an HMAC under a key only the server
holds, of the model and the subject's stable identity: the scoped blind index the subject's
records are stored under (:meth:`~governance.records.recorder.RecordStore.subject_ref`). The
subject gets one draw however the record is nudged; the audit entry records it, so an auditor
replays the decision from the record, the manifest's rule and ``u``.

The key is derived from the vault's blind-index key (one-way, with its own domain), so it is
never stored in the database and is rotated with the key file.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Final

from inference.postprocess import keyed_uniform

_KEY_DOMAIN: Final[bytes] = b"warden.tie-break-key/1"


@functools.lru_cache(maxsize=4)
def tie_break_key(blind_index_key: bytes) -> bytes:
    """The tie-break key, derived one-way from the vault's blind-index key."""
    return hmac.new(blind_index_key, _KEY_DOMAIN, hashlib.sha256).digest()


def subject_draw(key: bytes, *, model: str, subject_ref: str) -> float:
    """The draw of one subject for one model, in [0, 1).

    Args:
        key: :func:`tie_break_key`.
        model: the model's name (a subject's draw for one model says nothing of another's).
        subject_ref: the subject's scoped blind index.
    """
    name = model.encode("utf-8")
    identity = len(name).to_bytes(2, "big") + name + subject_ref.encode("ascii")
    return keyed_uniform(key, identity)
