"""The predict path: authorize, validate, infer (micro-batched), encrypt, record, respond."""
