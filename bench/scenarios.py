"""What is measured: the scenarios, the stacks they run on, and the body each one sends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import configs, load
from bench.configs import Addresses
from bench.stacks import Lab, Stack


@dataclass(frozen=True)
class Scenario:
    name: str
    stack: str
    """Scenarios with the same stack share one Envoy and processor."""
    body: str
    """static, repeated or unique (see bench.load); cached: one body the cache answers
    (exact hits); reworded: rewordings of it in turn (semantic hits)."""
    title: str
    tokens: int | None = None
    """Encoder tokens per prompt, for unique prompts."""

    @property
    def semantic(self) -> bool:
        return self.stack.startswith("semantic")

    def script(self) -> str:
        if self.body == "unique":
            assert self.tokens is not None
            return load.unique_script(self.tokens)
        if self.body == "repeated":
            return load.repeated_script([configs.chat_body(p) for p in configs.REPEATED_PROMPTS])
        if self.body == "cached":
            return load.static_script(configs.chat_body(configs.RULES_PROMPT, configs.CACHE_USER))
        if self.body == "reworded":
            bodies = [configs.chat_body(p, configs.CACHE_USER) for p in configs.CACHE_REWORDINGS]
            return load.repeated_script(bodies)
        return load.static_script(configs.chat_body(configs.RULES_PROMPT))


SWITCHYARD = "Envoy + switchyard"
SCENARIOS = [
    Scenario("ceiling", "ceiling", "static", "Envoy straight to the backend (no ext_proc)"),
    Scenario("trivial", "trivial", "static", "Envoy + trivial processor (JSON parse, one header)"),
    Scenario(
        "rules",
        "rules",
        "static",
        f"{SWITCHYARD}, rules-only, product defaults (stable observed at 10 %)",
    ),
    Scenario("rules-no-observe", "rules-no-observe", "static", f"{SWITCHYARD}, rules, observe off"),
    *(
        Scenario(
            f"semantic-unique-{n}",
            "semantic",
            "unique",
            f"{SWITCHYARD}, semantic, unique {n}-token prompts",
            n,
        )
        for n in (16, 32, 64, 256)
    ),
    Scenario(
        "semantic-repeated", "semantic", "repeated", f"{SWITCHYARD}, semantic, 8 repeated prompts"
    ),
    Scenario("rules-redis", "rules-redis", "static", f"{SWITCHYARD}, rules-only, state in Redis"),
    Scenario(
        "rules-2-workers",
        "rules-2-workers",
        "static",
        f"{SWITCHYARD}, rules-only, state in Redis, server.workers: 2",
    ),
    Scenario(
        "rules-observe-all",
        "rules-observe-all",
        "static",
        f"{SWITCHYARD}, rules-only, every response observed (observe_sample 1)",
    ),
    Scenario(
        "semantic-observe-all-unique-32",
        "semantic-observe-all",
        "unique",
        f"{SWITCHYARD}, semantic, unique 32-token prompts, every response observed",
        32,
    ),
    Scenario(
        "rules-envoy-analysis",
        "rules-envoy-analysis",
        "static",
        f"{SWITCHYARD}, rules-only, 5 % canary judged from Envoy's statistics, observe off",
    ),
    Scenario(
        "rules-baseline",
        "rules-baseline",
        "static",
        f"{SWITCHYARD} from --baseline's source, rules-only",
    ),
    Scenario(
        "semantic-baseline-unique-32",
        "semantic-baseline",
        "unique",
        f"{SWITCHYARD} from --baseline's source, semantic, unique 32-token prompts",
        32,
    ),
    Scenario(
        "semantic-redis-unique-32",
        "semantic-redis",
        "unique",
        f"{SWITCHYARD}, semantic, unique 32-token prompts, state in Redis",
        32,
    ),
]
SCENARIOS += [
    Scenario("cache-exact", "cache", "cached", f"{SWITCHYARD}, rules, cache: exact hits"),
    Scenario(
        "cache-semantic",
        "cache",
        "reworded",
        f"{SWITCHYARD}, rules, cache: 4 rewordings in turn (3 of 4 hits by meaning)",
    ),
]
SCENARIOS += [
    Scenario(
        "rules-retry",
        "rules-retry",
        "static",
        f"{SWITCHYARD}, rules, every request's canary refused and retried on stable",
    ),
    Scenario(
        "rules-fallback",
        "rules-fallback",
        "static",
        f"{SWITCHYARD}, rules, every request's primary refused and answered by the fallback",
    ),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
QUICK = ["ceiling", "trivial", "rules", "semantic-unique-32", "semantic-repeated"]
TARGET_PROMPT = "semantic-unique-32"
"""The ~30-token scenario the semantic latency targets are checked on."""


def model_available() -> bool:
    return (configs.MODEL_DIR / "model.onnx").is_file()


def start_stack(lab: Lab, name: str) -> Stack:
    """Starts the stack `name` on `lab`'s backend."""
    if name == "ceiling":
        return lab.start_ceiling(name)
    addresses = Addresses.pick(workers=2 if name == "rules-2-workers" else 1)
    if name == "trivial":
        # Rendered from the rules-only config: the same Envoy, filter for filter.
        config = configs.rules_config(addresses, lab.backend_address, observe=True)
        return lab.start_trivial(name, config, addresses)
    rules_stacks = (
        "rules",
        "rules-no-observe",
        "rules-redis",
        "rules-observe-all",
        "rules-baseline",
    )
    if name in (*rules_stacks, "rules-envoy-analysis", "rules-2-workers"):
        sample = configs.OBSERVE_ALL if name == "rules-observe-all" else None
        config = configs.rules_config(
            addresses, lab.backend_address, observe=name != "rules-no-observe", sample=sample
        )
        if name in ("rules-redis", "rules-2-workers"):
            config = configs.with_fleet_state(config, configs.RULES_ROUTE, lab.redis_url())
        if name == "rules-2-workers":
            config = configs.with_workers(config, 2)
        if name == "rules-envoy-analysis":
            config = configs.with_envoy_analysis(config, configs.RULES_ROUTE)
        probe = configs.chat_body(configs.RULES_PROMPT)
        return lab.start_switchyard(name, config, addresses, probe, configs.RULES_ROUTE)
    if name in ("semantic", "semantic-redis", "semantic-observe-all", "semantic-baseline"):
        if not model_available():
            raise RuntimeError(f"no model in {configs.MODEL_DIR}: run `make model` first")
        sample = configs.OBSERVE_ALL if name == "semantic-observe-all" else None
        config = configs.semantic_config(addresses, lab.backend_address, sample)
        if name == "semantic-redis":
            config = configs.with_fleet_state(config, "general", lab.redis_url())
        probe = configs.chat_body(configs.REPEATED_PROMPTS[0])
        return lab.start_switchyard(name, config, addresses, probe, "*")
    if name in ("rules-retry", "rules-fallback"):
        kind = name.removeprefix("rules-")
        config = configs.failover_config(addresses, lab.backend_address, kind=kind)
        probe = configs.chat_body(configs.RULES_PROMPT)
        return lab.start_switchyard(name, config, addresses, probe, configs.RULES_ROUTE)
    if name == "cache":
        if not model_available():
            raise RuntimeError(f"no model in {configs.MODEL_DIR}: run `make model` first")
        config = configs.cache_config(addresses, lab.backend_address)
        probe = configs.chat_body(configs.RULES_PROMPT, configs.CACHE_USER)
        return lab.start_switchyard(name, config, addresses, probe, configs.RULES_ROUTE)
    raise ValueError(f"unknown stack {name!r}")


def write_script(scenario: Scenario, workdir: Path) -> Path:
    path = workdir / f"{scenario.name}.lua"
    path.write_text(scenario.script())
    return path
