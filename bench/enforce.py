"""Benchmark: authorization latency with 10, 1k and 100k rules, warm (cached) and cold paths.

A synthetic policy of the given size is generated the way a large deployment looks: many
principals holding roles, roles granted per-model ``predict`` and per-area rights, models in
resource groups, and a few explicit denies. Each size is compiled into a
:class:`~governance.policy.engine.CompiledPolicy` (the object every request goes through), then:

- **cold**: a decision not in the cache (a fresh request triple: Casbin evaluates it);
- **warm**: the same requests again (answered from the per-version decision cache).

The warm path must not grow with the rule count. The last line printed is one JSON object:
ours = warm p50 at 100k rules, baseline = warm p50 at 10 rules, ratio = ours / baseline.

    python bench/enforce.py            # 10, 1k, 100k rules
    python bench/enforce.py --quick    # 10, 1k, 10k (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from governance.config import REPO_ROOT
from governance.policy.engine import CompiledPolicy
from governance.policy.rules import Rule

MODEL = REPO_ROOT / "policies" / "model.conf"
AREAS = ("api:models", "api:audit", "api:records", "api:datasets", "api:reports", "api:policy")
ACTIONS = ("read", "list", "write", "predict", "export")


def generate(n_rules: int, seed: int = 0) -> tuple[list[Rule], list[tuple[str, str, str]]]:
    """A policy of about ``n_rules`` rules, and request triples that exercise it.

    Roughly: 40% role grants of principals, 40% role permissions (per model and per area),
    15% models in resource groups, 5% denies.
    """
    rng = random.Random(seed)
    n_roles = max(2, n_rules // 50)
    n_models = max(2, n_rules // 10)
    n_groups = max(1, n_models // 20)
    n_principals = max(2, int(n_rules * 0.4))
    rules: set[Rule] = set()
    roles = [f"role:r{i}" for i in range(n_roles)]
    models = [f"model:m{i}" for i in range(n_models)]
    groups = [f"group:g{i}" for i in range(n_groups)]
    principals = [f"p{i}" for i in range(n_principals)]
    budget = {"g": int(n_rules * 0.4), "p": int(n_rules * 0.4), "g2": int(n_rules * 0.15)}
    budget["deny"] = max(1, n_rules - sum(budget.values()))
    for i in range(budget["g"]):
        rules.add(Rule("g", (principals[i % n_principals], rng.choice(roles))))
    for _ in range(budget["p"]):
        obj = rng.choice(models + groups) if rng.random() < 0.7 else rng.choice(AREAS)
        act = "predict" if obj.startswith(("model:", "group:")) else rng.choice(ACTIONS)
        rules.add(Rule("p", (rng.choice(roles), obj, act, "allow")))
    for i in range(budget["g2"]):
        rules.add(Rule("g2", (models[i % n_models], rng.choice(groups))))
    for _ in range(budget["deny"]):
        rules.add(
            Rule("p", (rng.choice(principals), rng.choice(AREAS), rng.choice(ACTIONS), "deny"))
        )
    requests = []
    for _ in range(2000):
        if rng.random() < 0.6:
            requests.append((rng.choice(principals), rng.choice(models), "predict"))
        else:
            requests.append((rng.choice(principals), rng.choice(AREAS), rng.choice(ACTIONS)))
    return sorted(rules), requests


def _time(policy: CompiledPolicy, request: tuple[str, str, str]) -> float:
    """Microseconds one ``enforce`` call takes."""
    start = time.perf_counter_ns()
    policy.enforce(*request)
    return (time.perf_counter_ns() - start) / 1000.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    n_rules: int, *, cold_samples: int, warm_samples: int, linear_samples: int
) -> dict[str, float]:
    rules, requests = generate(n_rules)
    start = time.perf_counter()
    compiled = CompiledPolicy(1, rules, Path(MODEL), cache_size=100_000)
    compile_s = time.perf_counter() - start
    distinct = list(dict.fromkeys(requests))[:cold_samples]
    # Cold: each triple's first decision (a cache miss: Casbin evaluates the matcher).
    cold = [_time(compiled, r) for r in distinct]
    decisions = [compiled.enforce(*r).allowed for r in distinct]
    cold_allowed = [t for t, ok in zip(cold, decisions, strict=True) if ok] or [0.0]
    # Reference: Casbin scanning every rule (no index), same triples, fewer of them.
    linear_policy = CompiledPolicy(1, rules, Path(MODEL), cache_size=100_000, indexed=False)
    linear = [_time(linear_policy, r) for r in distinct[:linear_samples]]
    for r, ok in zip(distinct[:linear_samples], decisions, strict=False):
        if linear_policy.enforce(*r).allowed != ok:
            raise RuntimeError(f"indexed and linear decisions differ on {r}")
    # Warm: the same triples again, round-robin (every one is a cache hit).
    warm = [_time(compiled, distinct[i % len(distinct)]) for i in range(warm_samples)]
    allowed = sum(decisions)
    return {
        "rules": len(rules),
        "compile_s": round(compile_s, 3),
        "cold_p50_us": round(statistics.median(cold), 2),
        "cold_p99_us": round(_pct(cold, 0.99), 2),
        "cold_allowed_p50_us": round(statistics.median(cold_allowed), 2),
        "linear_cold_p50_us": round(statistics.median(linear), 2),
        "warm_p50_us": round(statistics.median(warm), 3),
        "warm_p99_us": round(_pct(warm, 0.99), 3),
        "cold_samples": len(cold),
        "allowed_share": round(allowed / len(distinct), 3),
        "cache_hits": compiled.hits,
        "cache_misses": compiled.misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10, 1k, 10k rules")
    args = parser.parse_args()
    sizes = (10, 1_000, 10_000) if args.quick else (10, 1_000, 100_000)
    rows = {}
    for size in sizes:
        # Cold decisions at 100k rules take tens of milliseconds each: sample fewer.
        linear = 100 if size <= 1_000 else 12
        rows[size] = measure(size, cold_samples=300, warm_samples=20_000, linear_samples=linear)
        r = rows[size]
        print(
            f"{size:>7} rules (actual {r['rules']:>6}): compile {r['compile_s']:>6.3f} s | "
            f"cold p50 {r['cold_p50_us']:>6.1f} us p99 {r['cold_p99_us']:>7.1f} us "
            f"(allowed p50 {r['cold_allowed_p50_us']:>6.1f} us; Casbin full scan p50 "
            f"{r['linear_cold_p50_us']:>9.1f} us) | "
            f"warm p50 {r['warm_p50_us']:>5.2f} us p99 {r['warm_p99_us']:>5.2f} us",
            flush=True,
        )
    largest, smallest = rows[sizes[-1]], rows[sizes[0]]
    ours, baseline = largest["warm_p50_us"], smallest["warm_p50_us"]
    print(
        json.dumps(
            {
                "bench": "enforce",
                "metric": f"warm decision p50 us at {sizes[-1]} rules vs {sizes[0]} rules",
                "ours": ours,
                "baseline": baseline,
                "ratio": round(ours / baseline, 3),
                "sizes": {str(k): v for k, v in rows.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
