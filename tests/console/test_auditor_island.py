"""The proof data a page embeds: text from the log can never close its script element."""

from __future__ import annotations

import json

from governance.console.auditor.log_pages import data_island


def test_entry_text_cannot_leave_the_data_island() -> None:
    payload = {
        "canonical": '{"reason":"</script><script>alert(1)</script><!-- & -->"}',
        "note": "warden.local/audit\n3\nAAAA\n\n\u2014 warden.local/audit x\n",
    }
    island = str(data_island(payload))
    assert "<" not in island and ">" not in island and "&" not in island
    # The browser reads the same bytes the server signed.
    assert json.loads(island) == payload
