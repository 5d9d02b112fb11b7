"""An outside witness of the audit log (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature).

``cosignature`` is the format, ``identity`` and ``state`` the witness's key and memory,
``server`` its HTTP service; ``client``, ``cosigning`` and ``verify`` are the log's side.
"""
