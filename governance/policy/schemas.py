"""API schemas of the policy domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema

from governance.db.base import StrictDbInt
from governance.policy.rules import EFFECTS, VALUE_CHARS, VALUE_MAX


def _name(prefix: str = "") -> dict[str, Any]:
    # VALUE_RE's names as a JSON Schema pattern, optionally starting with ``prefix``.
    first = f"[A-Za-z0-9][{VALUE_CHARS}]{{0,{VALUE_MAX - 1}}}"
    rest = f"{prefix}[{VALUE_CHARS}]{{0,{VALUE_MAX - len(prefix)}}}"
    return {"type": "string", "pattern": f"^{rest if prefix else first}$"}


def _rule(ptype: str, *values: dict[str, Any]) -> dict[str, Any]:
    count = 1 + len(values)
    # No ``"items": false``: ``maxItems`` already bars values past ``prefixItems``, and client
    # generators (openapi-python-client) refuse a boolean schema.
    return {
        "type": "array",
        "prefixItems": [{"const": ptype}, *values],
        "minItems": count,
        "maxItems": count,
    }


# What a rule looks like, for the OpenAPI document. The request is validated by
# :func:`governance.policy.rules.parse_rule`, whose 422 names the rule and what is wrong with it
# (and which also checks the roles and actions against the policy's vocabulary).
RULE_SCHEMA: dict[str, Any] = {
    "description": "One rule: ['p', subject, object, action, 'allow' | 'deny'], "
    "['g', member, 'role:<name>'] (membership) or "
    "['g2', 'model:<name>' | 'group:<name>', 'group:<name>'] (resource groups). "
    "Roles and actions must be ones the policy's vocabulary declares (GET /v1/policy lists "
    "them).",
    "oneOf": [
        _rule("p", _name(), _name(), _name(), {"enum": list(EFFECTS)}),
        _rule("g", _name(), _name("role:")),
        _rule("g2", {"anyOf": [_name("model:"), _name("group:")]}, _name("group:")),
    ],
}
RuleIn = Annotated[list[Any], WithJsonSchema(RULE_SCHEMA)]

# Bounds shared by the API's schemas and the CLI's options, so that the two accept the same.
REPLAY_DAYS_MAX = 3660
REPLAY_EXAMPLES_MAX = 100


class PolicyVersionOut(BaseModel):
    """An immutable policy version: who made it, why, and its diff."""

    version: int
    parent: int | None
    created_at: datetime
    author: str
    approved_by: str | None
    reason: str
    kind: str
    sha256: str
    diff: dict[str, Any]


class PolicyView(BaseModel):
    """The rules grouped by meaning."""

    roles: dict[str, list[str]] = Field(description="role -> its direct members")
    grants: list[list[str]] = Field(description="[subject, object, action] allowed")
    denies: list[list[str]] = Field(description="[subject, object, action] denied (wins)")
    groups: dict[str, list[str]] = Field(description="resource group -> its members")


class PolicyVocabulary(BaseModel):
    """What a rule may name: the roles and actions of ``policies/default_policy.yaml``."""

    roles: list[str] = Field(description="role names, used in rules as role:<name>")
    actions: list[str]


class PolicyOut(PolicyVersionOut):
    """A policy version with its rules, grouped view and vocabulary."""

    rules: list[list[str]]
    view: PolicyView | None = None
    vocabulary: PolicyVocabulary | None = None


class PolicyChange(BaseModel):
    """Rules to add and remove, why, and the version they were written against."""

    model_config = ConfigDict(extra="forbid")
    add: list[RuleIn] = Field(default_factory=list, max_length=10_000)
    remove: list[RuleIn] = Field(default_factory=list, max_length=10_000)
    reason: str = Field(min_length=1, max_length=2000)
    base_version: StrictDbInt | None = None


class Rollback(BaseModel):
    """Return to an earlier policy version, and why."""

    model_config = ConfigDict(extra="forbid")
    to_version: StrictDbInt = Field(ge=1)
    reason: str = Field(min_length=1, max_length=2000)
    base_version: StrictDbInt | None = None


class PolicyDiff(BaseModel):
    """The rules added and removed between two policy versions."""

    from_version: int
    to_version: int
    added: list[list[str]]
    removed: list[list[str]]


class PolicyTestCreate(BaseModel):
    """A policy test: the decision a (subject, object, action) must get."""

    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=128)
    object: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=32)
    expected: Literal["allow", "deny"]
    description: str = Field(default="", max_length=2000)


class PolicyTestOut(BaseModel):
    """A stored policy test."""

    id: int
    subject: str
    object: str
    action: str
    expected: str
    description: str
    created_at: datetime
    created_by: str


class PolicyTestResult(BaseModel):
    """A policy test's expected and actual decision."""

    id: int | None
    subject: str
    object: str
    action: str
    expected: str
    actual: str
    reason: str
    description: str


class PolicyTestRun(BaseModel):
    """The policy tests run against a policy version."""

    policy_version: int
    total: int
    passed: int
    failed: int
    failing: list[PolicyTestResult]


class ImpactRequest(BaseModel):
    """A change (``add``/``remove``) or a rollback (``to_version``) to try on recent traffic."""

    model_config = ConfigDict(extra="forbid")
    add: list[RuleIn] = Field(default_factory=list, max_length=10_000)
    remove: list[RuleIn] = Field(default_factory=list, max_length=10_000)
    to_version: StrictDbInt | None = Field(default=None, ge=1)
    days: StrictInt = Field(default=30, ge=1, le=REPLAY_DAYS_MAX)
    examples: StrictInt = Field(default=5, ge=0, le=REPLAY_EXAMPLES_MAX)


class AccessExample(BaseModel):
    """One access that would change: an object and action, how often, when last."""

    object: str
    action: str
    requests: int
    last_seen: str


class PrincipalImpact(BaseModel):
    """One principal whose access would change."""

    principal: str
    requests: int = Field(description="audited requests in the window that would flip")
    permissions: int = Field(description="distinct (object, action) pairs that would flip")
    examples: list[AccessExample]


class ImpactTotals(BaseModel):
    """How many principals and requests would gain or lose access."""

    principals_gaining: int
    principals_losing: int
    requests_gaining: int
    requests_losing: int


class ImpactReportOut(BaseModel):
    """Who would gain or lose access under a policy change, from recent audited traffic."""

    current_version: int
    days: int
    since: datetime
    entries_scanned: int
    truncated: bool
    skipped_entries: int
    distinct_requests: int
    gained: list[PrincipalImpact]
    lost: list[PrincipalImpact]
    totals: ImpactTotals
    diff: dict[str, list[list[str]]]


class ProposalOut(BaseModel):
    """A proposed policy change awaiting (or past) a second officer's decision."""

    id: int
    created_at: datetime
    author: str
    reason: str
    kind: str
    changes: dict[str, Any]
    base_version: int
    status: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    applied_version: int | None


class ProposalDecision(BaseModel):
    """An approval, with an optional note."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


class ProposalRejection(BaseModel):
    """Why a proposal is rejected or withdrawn."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class RoleHoldingOut(BaseModel):
    """One period a member held a role, with who granted and revoked it."""

    member: str
    member_kind: Literal["principal", "role"]
    role: str
    granted_at: datetime
    granted_in_version: int
    granted_by: str
    grant_approved_by: str | None
    grant_reason: str
    revoked_at: datetime | None
    revoked_in_version: int | None
    revoked_by: str | None
    revoke_approved_by: str | None
    revoke_reason: str | None
