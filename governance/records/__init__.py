"""Encrypted records of governed predictions: storage, access, erasure and retention.

Every allowed predict call stores its request and response sealed under the data subject's
data key (:mod:`governance.records.recorder`, on the hot path). Stored records are listed as
metadata, read in clear only with the ``api:records decrypt`` right and a stated purpose,
erased by destroying the subject's keys, and purged by the retention policy
(:mod:`governance.records.service`, :mod:`governance.records.retention`).
"""
