"""``warden roles grant|revoke``: role membership is policy, so each is a policy version.

The local operator may appoint the first admin or compliance officer of a deployment; any other
grant that widens power over governance becomes a proposal for a compliance officer.
"""

from __future__ import annotations

import typer

from governance.cli.common import console, errors_as_exit, settings, transaction
from governance.identity.duties import change_role
from governance.kit.context import cli_context
from governance.policy.models import PolicyVersion
from governance.policy.service import default_policy

app = typer.Typer(
    help="Grant and revoke roles (each change is a new policy version).", no_args_is_help=True
)


def _change(principal: str, role: str, reason: str, grant: bool) -> str:
    cfg = settings()
    vocab, _ = default_policy(cfg.policies_dir)
    with errors_as_exit(), transaction(cfg) as session:
        row = change_role(
            session,
            cli_context(),
            principal=principal,
            role=role,
            reason=reason,
            grant=grant,
            vocab=vocab,
            local_operator=True,
        )
        if isinstance(row, PolicyVersion):
            return f"policy version {row.version}"
        return (
            f"proposal {row.id} is pending: a compliance officer must approve it "
            f"(`warden policy proposals approve {row.id}`)"
        )


@app.command("grant")
def grant(
    principal: str, role: str, reason: str = typer.Option(..., help="Why (required).")
) -> None:
    """Grant a role."""
    outcome = _change(principal, role, reason, True)
    console.print(f"grant of {role} to {principal}: {outcome}")


@app.command("revoke")
def revoke(
    principal: str, role: str, reason: str = typer.Option(..., help="Why (required).")
) -> None:
    """Revoke a role."""
    outcome = _change(principal, role, reason, False)
    console.print(f"revocation of {role} from {principal}: {outcome}")
