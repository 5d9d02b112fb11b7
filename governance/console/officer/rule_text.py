"""Rules as an officer types them in a form: one per line, values separated by commas.

It is the notation the policy pages show (``p, role:client, model:x, predict, deny``); the
values are validated by the policy service, as an API call's would be.
"""

from __future__ import annotations

from governance.policy.errors import InvalidPolicy

# The API takes at most this many rules to add or remove in one change.
MAX_RULES = 10_000


def parse_rules(text: str, where: str) -> list[list[str]]:
    """The rules of a textarea, one per non-empty line.

    Raises:
        InvalidPolicy: too many lines.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_RULES:
        raise InvalidPolicy(f"{where}: at most {MAX_RULES} rules in one change")
    return [[value.strip() for value in line.split(",")] for line in lines]
