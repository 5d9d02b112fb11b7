"""The OpenAPI document describes a policy rule as the API validates it.

A third party writes its policy changes from the documented schema; the API checks them with
:func:`~governance.policy.rules.parse_rule`. The two must agree on shape: every rule the API
accepts fits the schema, and a rule that fits the schema is refused only for what a schema
cannot know, an unknown role or action of this policy's vocabulary.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from governance.api.app import create_app
from governance.config import REPO_ROOT, Settings
from governance.policy.errors import InvalidPolicy
from governance.policy.rules import PTYPES, parse_rule
from governance.policy.schemas import RULE_SCHEMA
from governance.policy.service import default_policy

VOCAB, DEFAULT_RULES = default_policy(REPO_ROOT / "policies")
FITS = jsonschema_rs.Draft202012Validator(RULE_SCHEMA).is_valid
VOCABULARY_ONLY = ("unknown role", "unknown action")


def test_every_rule_of_the_default_policy_fits_the_schema() -> None:
    assert DEFAULT_RULES
    misfits = [rule.as_list() for rule in DEFAULT_RULES if not FITS(rule.as_list())]
    assert not misfits


def test_the_openapi_document_carries_the_schema(settings: Settings) -> None:
    document = create_app(settings).openapi()
    change = document["components"]["schemas"]["PolicyChange"]["properties"]
    assert change["add"]["items"] == RULE_SCHEMA
    assert change["remove"]["items"] == RULE_SCHEMA


GOOD = [
    *sorted(VOCAB.actions)[:3],
    *(f"role:{r}" for r in sorted(VOCAB.roles)[:3]),
    "role:nobody",
    "model:adult-mlp",
    "group:default-models",
    "api:audit",
    "alice",
    "role:",
    "group:",
    "allow",
    "deny",
    "maybe",
]
BAD = ["", "a,b", "bob\n", "x" * 129, "-x"]
_names = st.sampled_from(GOOD * 4 + BAD)  # mostly names the API could take
_values: st.SearchStrategy[Any] = st.one_of(_names, st.text(max_size=8), st.integers(), st.none())


def _shaped_like(ptype: str) -> st.SearchStrategy[list[Any]]:
    arity = 4 if ptype == "p" else 2  # values after the type
    return st.lists(_names, min_size=arity, max_size=arity).map(lambda v: [ptype, *v])


# Rules of the right length from likely names (many fit, some are accepted), and any lists.
_rules = st.one_of(st.sampled_from(PTYPES).flatmap(_shaped_like), st.lists(_values, max_size=6))


# Generation shares two cores with the rest of the suite: a slow draw is load, not a bug.
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_rules)
@example(["g", "alice", "role:auditor"])  # accepted
@example(["p", "role:client", "group:default-models", "predict", "deny"])  # accepted
@example(["g", "alice", "role:nobody"])  # fits; refused for the vocabulary
@example(["g2", "api:audit", "group:x"])  # refused for its shape
def test_the_schema_and_the_api_agree_on_a_rules_shape(raw: list[Any]) -> None:
    try:
        parse_rule(raw, VOCAB)
    except InvalidPolicy as exc:
        if FITS(raw):
            assert any(reason in str(exc) for reason in VOCABULARY_ONLY), (raw, str(exc))
        return
    assert FITS(raw), raw
