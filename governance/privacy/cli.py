"""``warden train`` (see :func:`train_command`) and ``warden privacy ledger|runs|train``."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from governance.cli.common import (
    JSON,
    console,
    errors_as_exit,
    open_engine,
    print_json,
    progress_bar,
    settings,
    show_rows,
    transaction,
)
from governance.db import make_sessionmaker
from governance.db.base import DB_INT_MAX
from governance.kit.context import cli_context
from governance.privacy.kinds import EPOCHS_MAX, SEED_MAX, WORKERS_MAX
from governance.privacy.schemas import LedgerOut, TrainingRunOut
from governance.privacy.service import TrainingRequest, training

app = typer.Typer(help="Privacy budgets and training runs.", no_args_is_help=True)


def _eps(value: float | None) -> str:
    return "∞" if value is None else f"{value:.3f}"


def train_command(
    dataset: str = typer.Option(..., "--dataset", help="A registered (or bundled) dataset."),
    model: str = typer.Option("mlp", "--model", help="mlp or logreg."),
    epsilon: float = typer.Option(1.0, "--epsilon", help="This run's target ε."),
    delta: float = typer.Option(None, "--delta", help="δ (default: the schema's, else the cap's)."),
    epochs: int = typer.Option(10, "--epochs", min=1, max=EPOCHS_MAX),
    seed: int = typer.Option(
        0,
        "--seed",
        min=0,
        max=SEED_MAX,
        help="Seeds model initialisation only; DP noise and sampling use secret OS entropy.",
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, max=DB_INT_MAX, help="Default 2048 (DP) / 512."
    ),
    lr: float = typer.Option(None, "--lr", help="Default 5e-3 (DP) / 3e-3."),
    non_private: bool = typer.Option(
        False, "--non-private", help="Train without DP (only where the dataset's policy allows)."
    ),
    register: bool = typer.Option(False, "--register", help="Register the model afterwards."),
    name: str = typer.Option(None, "--name", help="Model name (default <dataset>-<model>)."),
    version: str = typer.Option(None, "--version", help="Model version (default run-<id>)."),
    operator: str | None = typer.Option(
        None,
        "--operator",
        help="Who trains, recorded as the model's trained_by (default: the local operator).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=WORKERS_MAX,
        help="Processes for data-parallel DP training (gloo on CPU, NCCL with one GPU each); "
        "the ledger is charged once, at the global sample rate.",
    ),
) -> None:
    """Train a model under the dataset's privacy budget, with a progress bar."""
    if model not in ("mlp", "logreg"):
        raise typer.BadParameter("--model must be mlp or logreg")
    cfg = settings()
    request = TrainingRequest(
        dataset=dataset,
        model_kind=model,  # type: ignore[arg-type]
        epsilon=None if non_private else epsilon,
        delta=delta,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        name=name,
        version=version,
        register=register,
        workers=workers,
    )
    engine = open_engine(cfg)
    columns = (
        TextColumn("epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("ε spent {task.fields[eps]}"),
        TimeElapsedColumn(),
    )
    try:
        with errors_as_exit(), progress_bar(*columns) as bar:
            task = bar.add_task("train", total=epochs, eps="-")

            def progress(rec: dict[str, Any]) -> None:
                spent = rec.get("epsilon_spent")
                bar.update(
                    task,
                    completed=rec["epoch"],
                    eps="n/a (non-private)" if spent is None else f"{spent:.3f}",
                )

            run = training.run(
                make_sessionmaker(engine),
                cli_context(operator),
                settings=cfg,
                request=request,
                progress=progress,
            )
    finally:
        engine.dispose()
    guarantee = (
        f"ε = {run.epsilon:.4f}, δ = {run.delta:g}" if run.private else "NON-PRIVATE (no DP)"
    )
    console.print(
        f"run {run.id} completed: {run.model_name} {run.model_version}, {guarantee}, "
        f"test accuracy {run.test_accuracy or 0:.4f}"
        + (" (registered)" if run.registered else f" (artifact in {cfg.data_dir}/training)")
    )


app.command("train")(train_command)


@app.command("ledger")
def ledger(dataset: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A dataset's privacy budget: cap, ε spent (recomposed and naive), each run."""
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        out = LedgerOut.of(training.ledger(session, cfg, dataset))
    if as_json:
        typer.echo(json.dumps(out.model_dump(mode="json"), indent=2))
        return
    console.print(
        f"{out.dataset}: cap ε = {out.cap.epsilon:g} at δ = {out.cap.delta:g}; "
        f"spent ε = {_eps(out.epsilon_recomposed)} recomposed ({out.accountant.upper()}), "
        f"{_eps(out.epsilon_naive)} summed (δ = {out.delta_naive:g}); "
        f"remaining {out.remaining:.3f}"
    )
    if out.shared_with:
        console.print(f"  ledger {out.ledger} shared with {', '.join(out.shared_with)}")
    for e in out.entries:
        mech = e.charged
        what = (
            f"σ={mech.noise_multiplier:.4f} q={mech.sample_rate:.5f} steps={mech.steps}"
            if mech
            else "-"
        )
        console.print(
            f"  run {e.run:>4} {e.dataset:12} {e.status:10} ε={_eps(e.epsilon):>8} {what}"
        )


@app.command("runs")
def runs(dataset: str = typer.Option(None, "--dataset"), as_json: bool = JSON) -> None:
    """List training runs."""
    with errors_as_exit(), transaction() as session:
        rows = [TrainingRunOut.of(r, d) for r, d in training.list(session, dataset)]
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = [
        {
            "id": r.id,
            "dataset": r.dataset,
            "status": r.status,
            "privacy": "DP ε=" + _eps(r.epsilon) if r.private else "non-private",
            "model": r.model_name,
            "version": r.model_version,
            "started_by": r.started_by,
        }
        for r in rows
    ]
    show_rows(table, as_json=False, empty="no training runs")
