"""The vault: keys and encryption for stored prediction records.

Envelope encryption with crypto-shredding. A key-encryption key (KEK), held by a key provider
(:mod:`governance.vault.providers`), wraps one data key (DEK) per data subject
(:mod:`governance.vault.envelope`). DEKs seal each request and response with AES-256-GCM in a
versioned record format (:mod:`governance.vault.record_format`). Destroying a subject's DEKs makes
its records unreadable, and the audit log stays intact. Subjects are found by a keyed blind index,
and audit entries carry keyed digests, never plaintext (:mod:`governance.vault.blind_index`).

The vault imports no domain. Errors are in :mod:`governance.vault.errors`.
"""
