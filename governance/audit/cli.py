"""``warden audit verify | export | verify-bundle | checkpoint | anchor | public-key``.

Each command exits 0 on success and 1 with a one-line message on any failure: a log or bundle
that does not verify prints where it stops verifying (the first bad seq or checkpoint). The
verifiers first print the anchor they check against: a trusted checkpoint (``--trusted``), the
signer's memory, or none.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.audit.bundle import verify_bundle
from governance.audit.checkpoints import Checkpointer
from governance.audit.errors import AuditIntegrityError, AuditVerificationError
from governance.audit.export import (
    EXPORT_EVENT,
    export_bundle,
    previous_export_checkpoint,
    seq_range,
)
from governance.audit.memory import SignerMemory, memory_path
from governance.audit.note import Checkpoint, parse_vkey, verify_note
from governance.audit.repository import latest_checkpoint, snapshot_session
from governance.audit.signing import load_signing_key, public_vkey
from governance.audit.verify import check_anchored, verify_log
from governance.cli.common import (
    JSON,
    ExitCode,
    errors_as_exit,
    print_json,
    progress_bar,
    require_database,
    settings,
    transaction,
    working,
)
from governance.config import Settings
from governance.db.base import as_utc
from governance.errors import BadRequest
from governance.kit.context import cli_context
from governance.witness.bundle import check_bundle_witnessed, write_cosigned

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _local_vkey(cfg: Settings) -> str:
    return public_vkey(cfg.log_origin, load_signing_key(cfg.resolved_signing_key_file))


# A signed note is a few hundred bytes; a larger "trusted checkpoint" is not one.
_MAX_NOTE_FILE = 64 * 1024

_TRUSTED_HELP = (
    "A signed checkpoint note seen before (a previous export's checkpoints/<size>.note): "
    "the log must extend it and still hold it."
)


def _read_note(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_NOTE_FILE + 1)
    except OSError as exc:
        raise BadRequest(f"cannot read {path} ({exc.strerror})") from None
    if len(data) > _MAX_NOTE_FILE:
        raise BadRequest(f"{path} is too large to be a signed checkpoint")
    return data


def _anchor(cfg: Settings, key: str, trusted: Path | None) -> tuple[Checkpoint | None, str]:
    """The checkpoint to verify against, and how to name it: ``--trusted``, else the signer's
    memory when its file is here, else none."""
    vkey = parse_vkey(key)
    if trusted is not None:
        try:
            seen = verify_note(_read_note(trusted), vkey, origin=vkey.name)
        except AuditVerificationError as exc:
            raise AuditVerificationError(
                f"the trusted checkpoint {trusted}: {exc.message}"
            ) from None
        return seen, f"trusted checkpoint {trusted} (tree size {seen.size})"
    path = memory_path(cfg.resolved_signing_key_file)
    try:
        remembered = SignerMemory(path, vkey).read()
    except AuditIntegrityError as exc:
        raise AuditVerificationError(exc.message) from None
    if remembered is None:
        return None, f"none (no signer state at {path}): the database's own checkpoints only"
    return remembered.checkpoint, (
        f"the signer's last checkpoint {path} (tree size {remembered.size})"
    )


def _fail_verification(exc: AuditVerificationError, what: str) -> typer.Exit:
    where = []
    if exc.first_bad_seq is not None:
        where.append(f"first bad seq {exc.first_bad_seq}")
    if exc.checkpoint_size is not None:
        where.append(f"bad checkpoint at tree size {exc.checkpoint_size}")
    suffix = f" ({', '.join(where)})" if where else ""
    typer.echo(f"{what} FAILED: {exc.message}{suffix}", err=True)
    return typer.Exit(ExitCode.VERIFICATION_FAILED)


def _parse_end(text: str | None, what: str) -> tuple[int | None, datetime | None]:
    """A range end is a seq (digits) or an ISO 8601 time (UTC when it has no offset)."""
    if text is None:
        return None, None
    if text.isdigit():
        return int(text), None
    try:
        return None, as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise BadRequest(
            f"--{what} must be a seq number or an ISO 8601 time in UTC's range"
        ) from None


@app.command("verify")
def verify(
    vkey: str = typer.Option(
        None, help="Trusted verifier key (default: derived from the local signing key)."
    ),
    witnesses: int = typer.Option(
        None,
        "--witnesses",
        min=0,
        max=64,
        help="Cosignatures of configured witnesses the latest checkpoint needs "
        "(default: WARDEN_WITNESS_QUORUM).",
    ),
    trusted: Path = typer.Option(None, "--trusted", help=_TRUSTED_HELP),
    max_lag: int = typer.Option(
        None,
        "--max-checkpoint-lag",
        min=0,
        max=1_000_000_000,
        help="Most entries the head may run ahead of the latest checkpoint "
        "(default: twice WARDEN_CHECKPOINT_EVERY_ENTRIES).",
    ),
    max_age: float = typer.Option(
        None,
        "--max-checkpoint-age",
        min=0,
        help="Most seconds the oldest entry no checkpoint covers may have waited "
        "(default: six times WARDEN_CHECKPOINT_EVERY_SECONDS, at least 60).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify the whole live log: every leaf, stored node and checkpoint signature, against
    an anchor, and that no stretch of it went unsigned for long."""
    cfg = settings()
    lag = 2 * cfg.checkpoint_every_entries if max_lag is None else max_lag
    age = max(60.0, 6 * cfg.checkpoint_every_seconds) if max_age is None else max_age
    require_database(cfg)
    with errors_as_exit():
        key = vkey or _local_vkey(cfg)
        try:
            known, known_text = _anchor(cfg, key, trusted)
        except AuditVerificationError as exc:
            raise _fail_verification(exc, "verification") from None
        if not as_json:
            typer.echo(f"anchor: {known_text}")
        with snapshot_session(cfg.resolved_database_url) as session:
            size = audit_log.tree_size(session)
            with progress_bar(
                "verifying", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
            ) as bar:
                task = bar.add_task("verify", total=size)
                try:
                    report = verify_log(
                        session,
                        key,
                        anchor=known,
                        progress=lambda done: bar.update(task, completed=done),
                    )
                except AuditVerificationError as exc:
                    raise _fail_verification(exc, "verification") from None
            # The entries hash to the tree: the rows are checked against them even when the
            # checkpoints fall short, so one run names every problem.
            try:
                check_anchored(session, report, max_lag=lag, max_age=timedelta(seconds=age))
                unsigned = None
            except AuditVerificationError as exc:
                unsigned = exc
            rows_ok = _check_rows(session)
            if unsigned is not None:
                raise _fail_verification(unsigned, "verification") from None
            if not rows_ok:
                raise typer.Exit(ExitCode.VERIFICATION_FAILED)
            witnessed = _check_witnesses(session, cfg, report.latest_checkpoint, witnesses)
    if as_json:
        print_json(
            {
                "ok": True,
                "anchor": known_text,
                "entries": report.entries_checked,
                "checkpoints": report.checkpoints_checked,
                "latest_checkpoint": report.latest_checkpoint,
                "root": report.root.hex(),
                "witnesses": witnessed or None,
            }
        )
        return
    typer.echo(
        f"OK: {report.entries_checked} entries, {report.checkpoints_checked} checkpoints "
        f"(latest at {report.latest_checkpoint}), root {report.root.hex()}, "
        f"{report.entries_per_second:,.0f} entries/s"
    )
    if witnessed:
        typer.echo(witnessed)


def _check_rows(session: Session) -> bool:
    """Name each row that grants power and lacks its anchoring entry; False if any."""
    from governance.row_anchors import check_rows

    problems = [row.problem for row in check_rows(session) if row.problem is not None]
    for problem in problems:
        typer.echo(f"unanchored: {problem}", err=True)
    if problems:
        typer.echo(
            f"verification FAILED: {len(problems)} rows that grant power are not anchored in "
            "the log (see docs/security.md, anchored rows)",
            err=True,
        )
    return not problems


def _check_witnesses(
    session: Session, cfg: Settings, latest: int | None, required: int | None
) -> str:
    """Check the stored cosignatures; a line for the output, or '' without witnesses."""
    from governance.witness.verify import check_witnessed

    required = cfg.witness_quorum if required is None else required
    if not cfg.witnesses and not required:
        return ""
    try:
        found = check_witnessed(session, cfg.witnesses, checkpoint=latest, required=required)
    except AuditVerificationError as exc:
        raise _fail_verification(exc, "witness verification") from None
    names = ", ".join(found.cosigners) or "none"
    return f"witnesses: checkpoint {latest} cosigned by {names} ({required} required)"


@app.command("export")
def export(
    out: Path = typer.Argument(..., help="Bundle directory to create (must not exist)."),
    from_: str = typer.Option(
        None, "--from", help="First entry: a seq number, or an ISO 8601 time (default: 0)."
    ),
    to: str = typer.Option(
        None,
        "--to",
        help="Last entry, inclusive: a seq number, or an ISO 8601 time (default: the last "
        "entry). The current head is signed first.",
    ),
    previous: Path = typer.Option(
        None,
        "--previous",
        help="A signed checkpoint the bundle proves it extends (default: the checkpoint the "
        "previous export ended at).",
    ),
    as_json: bool = JSON,
) -> None:
    """Export entries as a bundle anyone can verify offline (docs/audit-bundle.md).

    Times select by entry time: --from T starts at the first entry at or after T, --to T
    ends at the last entry at or before T; a time without an offset is UTC. Each bundle also
    carries the previous export's checkpoint and the proof that its own extends it.
    """
    cfg = settings()
    with errors_as_exit():
        from_seq, since = _parse_end(from_, "from")
        to_seq, until = _parse_end(to, "to")
        checkpointer = Checkpointer.from_settings(cfg)
        vkey = public_vkey(cfg.log_origin, checkpointer.key)
        earlier = None if previous is None else _read_note(previous).decode("utf-8", "replace")
        with transaction(cfg) as session:
            if to_seq is None and until is None:
                to_seq = audit_log.tree_size(session) - 1
            first, final = seq_range(
                session, from_seq=from_seq, to_seq=to_seq, since=since, until=until
            )
            # Every export ends at the head, signed now (and only if it extends the last).
            checkpointer.checkpoint(session, force=True)
        cosigned = _cosign(cfg, as_json=as_json)
        with snapshot_session(cfg.resolved_database_url) as session:
            if earlier is None:
                earlier = previous_export_checkpoint(session)
            head = latest_checkpoint(session)
            assert head is not None  # signed just above
            head_size = head.tree_size
            with working(f"exporting entries {first}..{final}"):
                bundle = export_bundle(
                    session, from_seq=first, to_seq=final, out_dir=out, vkey=vkey, previous=earlier
                )
            write_cosigned(session, bundle, head_size)
        with transaction(cfg) as session:
            ctx = cli_context()
            audit_log.append(
                session,
                [
                    ctx.event(
                        EXPORT_EVENT,
                        "export",
                        resource={"from_seq": first, "to_seq": final},
                        details={"via": "cli", "checkpoint": head_size},
                    )
                ],
            )
    if as_json:
        print_json(
            {
                "from_seq": first,
                "to_seq": final,
                "bundle": str(bundle),
                "checkpoint": head_size,
                "cosigned_by": cosigned,
            }
        )
        return
    typer.echo(f"exported entries {first}..{final} to {bundle}")


@app.command("verify-bundle")
def verify_bundle_cmd(
    bundle: Path = typer.Argument(..., help="The bundle directory."),
    vkey: str = typer.Option(
        None, help="The operator's published verifier key (default: trust the bundle's own)."
    ),
    trusted: Path = typer.Option(None, "--trusted", help=_TRUSTED_HELP),
    witnesses: int = typer.Option(
        None,
        "--witnesses",
        min=0,
        max=64,
        help="Cosignatures of configured witnesses its checkpoint needs, from cosigned.note "
        "(default: WARDEN_WITNESS_QUORUM).",
    ),
) -> None:
    """Verify an export bundle using nothing but the bundle (and optionally a trusted key and
    a checkpoint seen before)."""
    if trusted is None:
        typer.echo("anchor: none (no --trusted): the bundle proves only its own consistency")
    else:
        typer.echo(f"anchor: trusted checkpoint {trusted}")
    try:
        note = None if trusted is None else _read_note(trusted)
    except BadRequest as exc:
        typer.echo(f"bundle verification FAILED: {exc.message}", err=True)
        raise typer.Exit(1) from None
    try:
        report = verify_bundle(bundle, trusted_vkey=vkey, trusted_checkpoint=note)
    except AuditVerificationError as exc:
        raise _fail_verification(exc, "bundle verification") from None
    cfg = settings()
    required = cfg.witness_quorum if witnesses is None else witnesses
    witnessed = ""
    if required:
        try:
            found = check_bundle_witnessed(
                bundle,
                origin=report.origin,
                size=report.tree_size,
                root=report.root,
                witnesses=cfg.witnesses,
                required=required,
            )
        except AuditVerificationError as exc:
            raise _fail_verification(exc, "witness verification") from None
        witnessed = (
            f"witnesses: checkpoint {report.tree_size} cosigned by {', '.join(found.cosigners)} "
            f"({required} required)"
        )
    typer.echo(
        f"OK: entries {report.from_seq}..{report.to_seq} are in {report.origin} at tree size "
        f"{report.tree_size} (root {report.root.hex()}), checkpoints "
        f"{', '.join(map(str, report.checkpoint_sizes))}, key {report.vkey}"
    )
    if vkey is None:
        typer.echo("note: compare the key above with the one the operator publishes")
    if witnessed:
        typer.echo(witnessed)


@app.command("checkpoint")
def checkpoint(as_json: bool = JSON) -> None:
    """Sign a checkpoint of the current tree now."""
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        row = Checkpointer.from_settings(cfg).checkpoint(session, force=True)
        size, root = (0, None) if row is None else (row.tree_size, row.root_hash.hex())
    if row is None:
        if as_json:
            print_json({"signed": False, "tree_size": 0, "root": None, "cosigned_by": None})
        else:
            typer.echo("the log is empty: nothing to sign")
        return
    if not as_json:
        typer.echo(f"signed checkpoint at tree size {size}, root {root}")
    cosigned = _cosign(cfg, as_json=as_json)
    if as_json:
        print_json({"signed": True, "tree_size": size, "root": root, "cosigned_by": cosigned})


def _cosign(cfg: Settings, *, as_json: bool = False) -> list[str] | None:
    """Ask the configured witnesses to cosign the newest checkpoint (docs/witness.md).

    Which witnesses cosigned, or None without witnesses; the tally line is left out under
    ``--json`` (stdout is the JSON document), refusals still go to stderr.
    """
    from governance.cli.common import open_engine
    from governance.db import make_sessionmaker
    from governance.witness.cosigning import Cosigner

    cosigner = Cosigner.from_settings(cfg)
    if cosigner is None:
        return None
    engine = open_engine(cfg)
    try:
        result = cosigner.cosign_latest(make_sessionmaker(engine))
    finally:
        engine.dispose()
    for name, why in sorted(result.refused.items()):
        typer.echo(f"witness {name} did not cosign: {why}", err=True)
    if not as_json:
        typer.echo(f"cosigned by {len(result.cosigned)} of {len(cosigner.clients)} witnesses")
    return list(result.cosigned)


@app.command("anchor")
def anchor() -> None:
    """Anchor rows written before audit entries named content hashes (once, after upgrade).

    A row is anchored only where the latest entry about it verifies and records that very row;
    any other unanchored row is listed and left as it is.
    """
    from governance.row_anchors import anchor_legacy

    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        anchored, refused = anchor_legacy(session, cli_context())
    for row in anchored:
        typer.echo(f"anchored: {row.what}")
    for row in refused:
        typer.echo(f"not anchored: {row.problem}", err=True)
    typer.echo(f"{len(anchored)} rows anchored, {len(refused)} left unanchored")
    if refused:
        raise typer.Exit(1)


@app.command("public-key")
def public_key(as_json: bool = JSON) -> None:
    """Print the log's verifier key (C2SP vkey), to publish for auditors."""
    with errors_as_exit():
        cfg = settings()
        vkey = _local_vkey(cfg)
    if as_json:
        print_json({"origin": cfg.log_origin, "vkey": vkey})
        return
    typer.echo(vkey)
