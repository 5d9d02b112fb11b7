"""Tamper-evident audit log: canonical JSON, an RFC 9162 Merkle tree, C2SP signed checkpoints
and an offline-verifiable export bundle (see docs/audit-bundle.md)."""
