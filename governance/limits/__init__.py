"""Rate limits that hold across server processes, and refusals summarised in the audit log."""

from governance.limits.errors import LimitsPolicyError, RateLimited
from governance.limits.policy import LIMITS_FILE, Limit, LimitsPolicy, load_limits
from governance.limits.service import Limits, address_subject
from governance.limits.summary import SUMMARY_EVENT

__all__ = [
    "LIMITS_FILE",
    "SUMMARY_EVENT",
    "Limit",
    "Limits",
    "LimitsPolicy",
    "LimitsPolicyError",
    "RateLimited",
    "address_subject",
    "load_limits",
]
