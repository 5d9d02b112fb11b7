"""``warden roles grant|revoke``: role membership is policy, so each is a policy version."""

from __future__ import annotations

import typer

from governance.cli.common import console, errors_as_exit, settings, transaction
from governance.context import cli_context
from governance.identity.service import identity
from governance.policy.rules import role_subject
from governance.policy.service import default_policy, policy

app = typer.Typer(
    help="Grant and revoke roles (each change is a new policy version).", no_args_is_help=True
)


def _change(principal: str, role: str, reason: str, grant: bool) -> str:
    cfg = settings()
    vocab, _ = default_policy(cfg.policies_dir)
    rule = ["g", principal, role_subject(role)]
    add, remove = ([rule], []) if grant else ([], [rule])
    with errors_as_exit(), transaction(cfg) as session:
        identity.get(session, principal)
        row = policy.apply(
            session, cli_context(), add=add, remove=remove, reason=reason, vocab=vocab
        )
        return f"policy version {row.version}"


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
