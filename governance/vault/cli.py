"""``warden vault keys|kek|rotate-deks|rotate-kek|rotate-due|retire-kek|rotations``: key
management."""

from __future__ import annotations

import typer

from governance.cli.common import (
    JSON,
    console,
    errors_as_exit,
    open_engine,
    print_json,
    settings,
    show_rows,
    transaction,
)
from governance.db import make_sessionmaker
from governance.kit.context import cli_context
from governance.vault.errors import KeyLifecycleError
from governance.vault.kek_schedule import KekSchedule
from governance.vault.keys import data_keys
from governance.vault.providers import LocalKeyFileProvider, ServiceKeyProvider, load_provider
from governance.vault.rotation import rotate_kek

app = typer.Typer(help="Key management: data keys, the KEK, rotation.", no_args_is_help=True)


def _keys() -> ServiceKeyProvider:
    cfg = settings()
    return load_provider(cfg.key_provider, path=cfg.resolved_key_file)


@app.command("keys")
def keys_(
    state: str = typer.Option(None, help="active, decrypt_only or destroyed."),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = JSON,
) -> None:
    """List data keys (metadata only)."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "id": k.id,
                "version": k.version,
                "state": k.state,
                "kek": k.kek_id,
                "uses": k.uses,
                "subject_ref": f"{k.subject_ref[:16]}…",
            }
            for k in data_keys.list(session, state=state, limit=limit)
        ]
    show_rows(rows, as_json=as_json, empty="no data keys")


@app.command("kek")
def kek(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the current KEK version and live data keys under each version."""
    with errors_as_exit():
        keys = _keys()
        with transaction() as session:
            usage = data_keys.kek_usage(session)
    if as_json:
        print_json(
            {
                "current": keys.key_id,
                "available": list(keys.available_kek_ids()),
                "live_data_keys": dict(sorted(usage.items())),
            }
        )
        return
    console.print(f"current {keys.key_id}; available {', '.join(keys.available_kek_ids())}")
    for kek_id, count in sorted(usage.items()):
        console.print(f"{kek_id}: {count} live data keys")


@app.command("rotate-deks")
def rotate_deks(
    reason: str = typer.Option(..., help="Why (audited)."),
    subject_id: str = typer.Option(
        None, help="Only this subject id's keys (in every client's scope)."
    ),
) -> None:
    """Rotate data keys now: new records get new keys; old ones stay readable."""
    with errors_as_exit():
        blind_key = _keys().blind_index_key()
        with transaction() as session:
            refs = None
            if subject_id is not None:
                refs = data_keys.subject_refs(session, blind_key, subject_id).values()
            count = data_keys.rotate(session, cli_context(), subject_refs=refs, reason=reason)
    console.print(f"rotated {count} data keys")


@app.command("rotate-kek")
def rotate_kek_(
    reason: str = typer.Option(..., help="Why (audited)."),
    rewrap_only: bool = typer.Option(
        False,
        help="Do not create a new KEK; rewrap onto the current one (finish an "
        "interrupted rotation, or after rotating in an external secret store).",
    ),
) -> None:
    """Rotate the KEK and rewrap every live data key onto it (records are not re-encrypted)."""
    cfg = settings()
    with errors_as_exit():
        keys = _keys()
        engine = open_engine(cfg)
        try:
            done = rotate_kek(
                sessions=make_sessionmaker(engine),
                keys=keys,
                ctx=cli_context(),
                reason=reason,
                rotate_provider=not rewrap_only,
            )
        finally:
            engine.dispose()
    console.print(f"KEK {done.from_kek} -> {done.to_kek}: rewrapped {done.rewrapped} data keys")


@app.command("rotate-due")
def rotate_due() -> None:
    """Rotate and retire the KEK if it is older than WARDEN_KEK_ROTATION_DAYS (for cron, where
    no server runs the schedule; servers holding the lease are waited for, never raced)."""
    cfg = settings()
    with errors_as_exit():
        keys = _keys()
        engine = open_engine(cfg)
        try:
            schedule = KekSchedule(
                sessions=make_sessionmaker(engine),
                keys=keys,
                period=cfg.kek_rotation_period,
                holder="cli",
            )
            done = schedule.run_if_due()
            retire_by = schedule.retire_by()
        finally:
            engine.dispose()
    if done is None:
        when = retire_by.isoformat() if retire_by is not None else "unknown"
        console.print(f"KEK {keys.key_id} is not due (or another process rotates it): due {when}")
        return
    console.print(
        f"KEK {done.from_kek} -> {done.to_kek}: rewrapped {done.rewrapped} data keys; "
        f"available now {', '.join(keys.available_kek_ids())}"
    )


@app.command("retire-kek")
def retire_kek(kek_id: str) -> None:
    """Remove an old KEK version from the key file once no live data key uses it.

    Every server must have picked up the rotation first (restart them), or one could still
    wrap a new data key under the old version.
    """
    with errors_as_exit():
        keys = _keys()
        if not isinstance(keys, LocalKeyFileProvider):
            raise KeyLifecycleError("only KEKs in a local key file can be retired here")
        with transaction() as session:
            left = data_keys.count_under_kek(session, kek_id)
        if left:
            raise KeyLifecycleError(
                f"{left} live data keys are still wrapped by {kek_id}: run `warden vault "
                "rotate-kek --rewrap-only` first"
            )
        keys.retire(kek_id)
    console.print(f"retired {kek_id}")


@app.command("rotations")
def rotations(limit: int = typer.Option(50, min=1, max=10_000), as_json: bool = JSON) -> None:
    """List key rotations."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "rotated_at": r.rotated_at,
                "kind": r.kind,
                "rotated_by": r.rotated_by,
                "keys": r.keys_affected,
                "from_kek": r.from_kek,
                "to_kek": r.to_kek,
                "reason": r.reason,
            }
            for r in data_keys.rotations(session, limit=limit)
        ]
    show_rows(rows, as_json=as_json, empty="no key rotations yet")
