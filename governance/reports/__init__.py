"""Exportable compliance reports: one data model rendered as JSON, HTML and PDF, with a signed
manifest of the files.

``builder.build_report`` gathers the evidence, ``service.reports.generate`` writes the folder,
``manifest.verify_report_dir`` checks it.
"""
