"""DP and non-private training on a small synthetic table: guarantee, artifact, card, aborts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from governance.datasets import LoadedDataset, encode_features
from governance.privacy import (
    Mechanism,
    TrainingAborted,
    TrainingConfigError,
    compose_epsilon,
    train,
)
from inference.artifact import load_weights, read_manifest, sha256_file

DELTA = 1e-4
COMMON: dict[str, Any] = {"epochs": 3, "batch_size": 150, "lr": 0.02, "delta": DELTA, "seed": 7}


def _train(data: LoadedDataset, out: Path, **kw: Any):  # type: ignore[no-untyped-def]
    args = {**COMMON, **kw}
    return train(dataset=data, out_dir=out, name="toy-mlp", version="v1", device="cpu", **args)


@pytest.fixture(scope="module")
def dp_run(synthetic: LoadedDataset, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    out = tmp_path_factory.mktemp("dp") / "artifact"
    result = _train(synthetic, out, epsilon=2.0, progress=seen.append)
    return result, seen


def test_epsilon_is_within_target_and_recomputable(dp_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = dp_run
    training = read_manifest(result.artifact_dir).training
    assert training["private"] is True
    assert training["accountant"] in ("prv", "pld")
    by = training["epsilon_by_accountant"]
    assert training["epsilon"] == min(by["prv"], by["pld"]) == by[training["accountant"]]
    assert training["poisson_sampling"] is True
    assert 0 < training["epsilon"] <= training["target_epsilon"] == 2.0
    mech = Mechanism(training["noise_multiplier"], training["sample_rate"], training["steps"])
    assert compose_epsilon([mech], training["delta"]) == pytest.approx(
        training["epsilon"], rel=1e-9
    )
    assert training["ledger_mechanism"] == mech.to_dict() == result.mechanism.to_dict()
    # 900 rows, batch 150 -> q = 1/6 and 6 steps an epoch.
    assert training["sample_rate"] == pytest.approx(1 / 6)
    assert training["steps"] == 3 * 6
    assert (
        training["dataset"]["content_hash"] == result.manifest.training["dataset"]["content_hash"]
    )


def test_ghost_clipping_ran_and_is_recorded(dp_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = dp_run
    training = result.manifest.training
    assert result.grad_sample_mode == training["grad_sample_mode"] == "ghost"
    modes = training["layer_gradient_modes"]
    assert modes["net.0"] == "ghost_norm"  # Linear
    assert modes["net.1"] == "ghost_norm"  # LayerNorm, by governance.privacy.norm_samplers
    assert training["secure_mode"] is False


def test_progress_reports_each_epoch_with_growing_epsilon(dp_run) -> None:  # type: ignore[no-untyped-def]
    result, seen = dp_run
    assert [r["epoch"] for r in seen] == [1, 2, 3]
    spent = [r["epsilon_spent"] for r in seen]
    assert spent == sorted(spent) and spent[-1] == pytest.approx(result.epsilon)
    # Nothing computed from the training rows leaves the run: no loss, here or in the manifest.
    assert all(set(r) == {"epoch", "epochs", "epsilon_spent", "seconds"} for r in seen)
    assert all("loss" not in r for r in result.manifest.training["history"])


def test_model_learns_and_artifact_round_trips(dp_run, synthetic: LoadedDataset) -> None:  # type: ignore[no-untyped-def]
    result, _ = dp_run
    majority = result.metrics["test_majority_accuracy"]
    assert result.test_accuracy > majority + 0.05
    manifest = read_manifest(result.artifact_dir)
    module = load_weights(result.artifact_dir, manifest)
    x = encode_features(synthetic.schema, synthetic.test.features)
    pred = module(x).argmax(dim=1).numpy()
    assert (pred == synthetic.test.labels).mean() == pytest.approx(result.test_accuracy)


def test_model_card_is_filled_from_the_run(dp_run, synthetic: LoadedDataset) -> None:  # type: ignore[no-untyped-def]
    result, _ = dp_run
    path = result.artifact_dir / "model_card.json"
    assert read_manifest(result.artifact_dir).files["model_card.json"] == sha256_file(path)
    card = json.loads(path.read_text())
    for section in (
        "model_details",
        "intended_use",
        "factors",
        "metrics",
        "evaluation_data",
        "training_data",
        "quantitative_analyses",
        "ethical_considerations",
        "caveats_and_recommendations",
    ):
        assert section in card
    assert card["quantitative_analyses"]["overall"] == result.metrics
    assert card["training_data"]["content_hash"] == synthetic.content_hash
    assert card["training_data"]["preprocessing_privacy_cost"] == 0.0
    assert "PUBLIC bounds" in card["training_data"]["preprocessing"]
    assert "no privacy budget" in card["training_data"]["preprocessing"]
    groups = card["quantitative_analyses"]["by_group"]["group"]
    assert set(groups) == {"a", "b"}
    # No count of the private data: not per group, not of the rows dropped.
    assert all(set(g) == {"accuracy", "selection_rate"} for g in groups.values())
    assert "rows_dropped_for_missing_values" not in card["evaluation_data"]
    assert "outside the DP guarantee" in card["evaluation_data"]["privacy"]
    assert f"{result.epsilon:.4g}" in card["model_details"]["differential_privacy"]
    randomness = card["model_details"]["randomness"]
    assert randomness["seed"] == 7 and randomness["seed_covers"] == "model initialisation"
    assert randomness["mechanism_randomness"] == "os-entropy"
    assert "operating-system entropy" in randomness["statement"]
    assert "seed" not in result.manifest.training


def test_same_seed_same_init_but_secret_noise(synthetic: LoadedDataset, tmp_path: Path) -> None:
    # Non-private runs depend on the seed alone (initialisation and shuffling): equal weights
    # show the seed still fixes the initial weights. Private runs with that seed differ: their
    # noise and batches come from secret entropy.
    plain = [_train(synthetic, tmp_path / f"np{i}", epsilon=None, epochs=1) for i in (1, 2)]
    assert plain[0].manifest.weights_sha256 == plain[1].manifest.weights_sha256
    private = [_train(synthetic, tmp_path / f"dp{i}", epsilon=2.0, epochs=1) for i in (1, 2)]
    a, b = (load_weights(r.artifact_dir, r.manifest).state_dict() for r in private)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert private[0].manifest.training["model_init_seed"] == 7


def test_hooks_mode_and_logreg(synthetic: LoadedDataset, tmp_path: Path) -> None:
    result = _train(
        synthetic,
        tmp_path / "a",
        epsilon=2.0,
        grad_sample_mode="hooks",
        model_kind="logreg",
        epochs=1,
    )
    assert result.grad_sample_mode == "hooks"
    assert result.manifest.architecture.kind == "logreg"
    assert result.epsilon is not None and result.epsilon <= 2.0


def test_non_private_uses_same_code_and_is_marked(synthetic: LoadedDataset, tmp_path: Path) -> None:
    result = _train(synthetic, tmp_path / "np", epsilon=None)
    training = result.manifest.training
    assert training["private"] is False and result.private is False
    assert training["epsilon"] is None and result.mechanism is None
    assert result.manifest.architecture.hidden == (64, 64)
    assert result.test_accuracy > result.metrics["test_majority_accuracy"] + 0.05
    card = json.loads((result.artifact_dir / "model_card.json").read_text())
    assert "WITHOUT differential privacy" in card["model_details"]["differential_privacy"]


def test_failed_run_reports_the_steps_it_spent(synthetic: LoadedDataset, tmp_path: Path) -> None:
    def fail_after_first_epoch(record: dict[str, Any]) -> None:
        if record["epoch"] == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(TrainingAborted) as info:
        _train(synthetic, tmp_path / "x", epsilon=2.0, progress=fail_after_first_epoch)
    err = info.value
    assert err.steps_done == 12  # two epochs of 6 steps ran before the crash
    assert err.mechanism is not None and err.mechanism.steps == 12
    assert err.extra["mechanism"]["steps"] == 12
    assert compose_epsilon([err.mechanism], DELTA) < 2.0
    assert not (tmp_path / "x" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"delta": 0.01}, "delta must be in (0, 1/n)"),
        ({"epsilon": -1.0}, "epsilon must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"grad_sample_mode": "magic"}, "grad_sample_mode"),
        ({"model_kind": "tree"}, "model_kind"),
    ],
)
def test_bad_configuration_is_refused_before_spending(
    synthetic: LoadedDataset, tmp_path: Path, overrides: dict[str, Any], fragment: str
) -> None:
    args = {"epsilon": 1.0, **overrides}
    with pytest.raises(TrainingConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        _train(synthetic, tmp_path / "bad", **args)


def test_existing_artifact_is_not_overwritten(dp_run, synthetic: LoadedDataset) -> None:  # type: ignore[no-untyped-def]
    result, _ = dp_run
    with pytest.raises(TrainingConfigError, match="already holds"):
        _train(synthetic, result.artifact_dir, epsilon=1.0)


def test_secure_mode_fails_closed_without_its_rng(synthetic: LoadedDataset, tmp_path: Path) -> None:
    # torchcsprng is not installed here; where it is, secure mode must train instead.
    try:
        import torchcsprng  # noqa: F401
    except ImportError:
        from governance.privacy import SecureModeUnavailable

        with pytest.raises(SecureModeUnavailable):
            _train(synthetic, tmp_path / "s", epsilon=1.0, secure_mode=True)
    else:
        result = _train(synthetic, tmp_path / "s", epsilon=1.0, secure_mode=True)
        assert result.manifest.training["secure_mode"] is True


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_cuda(synthetic: LoadedDataset, tmp_path: Path) -> None:
    result = train(
        dataset=synthetic,
        out_dir=tmp_path / "g",
        name="toy-mlp",
        version="v1",
        device="cuda",
        epsilon=2.0,
        **{k: v for k, v in COMMON.items()},
    )
    assert result.manifest.training["device"] == "cuda"
    assert result.epsilon is not None and result.epsilon <= 2.0
