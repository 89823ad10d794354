"""One rollout state for the whole fleet: replicas behind their own Envoys, one real Redis."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.e2e.fleet import Fleet, running_fleet
from tests.e2e.stack import SWITCHYARD, Client, Load, Sent, canary_config, wait_until

pytestmark = pytest.mark.e2e

PROMPT = "symptom: persistent cough"


class SpreadLoad:
    """Load (new sessions, steady) through every replica's Envoy at once."""

    def __init__(self, fleet: Fleet, threads_per_replica: int = 2) -> None:
        self.loads = [Load(stack, PROMPT, threads_per_replica) for stack in fleet.replicas]

    def __enter__(self) -> SpreadLoad:
        for load in self.loads:
            load.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for load in self.loads:
            load.__exit__()

    @property
    def sent(self) -> list[tuple[int, Sent]]:
        return [(replica, s) for replica, load in enumerate(self.loads) for s in load.sent]

    def since(self, start: float) -> list[tuple[int, Sent]]:
        return [(replica, s) for replica, s in self.sent if s.at >= start]


def phases(fleet: Fleet, route: str = "clinical") -> list[str]:
    return [
        fleet.rollout(i, route)["phase"]
        for i, stack in enumerate(fleet.replicas)
        if stack.switchyard is not None
    ]


def test_leader_takeover_then_a_failing_canary_leaves_every_replica(tmp_path: Path) -> None:
    with running_fleet(tmp_path, canary_config(), replicas=3) as fleet:
        wait_until(lambda: fleet.leader() is not None, 10, "a leader")
        leader = fleet.leader()
        assert leader is not None
        # The leader dies: another replica leads within the lease (2 s) and a sync.
        fleet.replicas[leader].stop_switchyard(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: fleet.leader() is not None, 10, "a new leader")
        new_leader = fleet.leader()
        took = time.monotonic() - killed_at
        print(f"new leader after {took:.2f}s")
        assert new_leader != leader and took < 2.0 + 1.5
        fleet.replicas[leader].start_switchyard()

        with SpreadLoad(fleet) as load:
            wait_until(
                lambda: sum(s.backend == "med-v2" for _, s in load.sent) >= 30,
                30,
                "canary traffic",
            )
            fleet.replicas[0].backends["med-v2"].control(error_rate=1.0)
            broken_at = time.monotonic()
            wait_until(lambda: set(phases(fleet)) == {"rolled_back"}, 15, "the fleet's rollback")
            print(f"every replica rolled back after {time.monotonic() - broken_at:.2f}s")
            time.sleep(max(0.0, broken_at + 6.5 - time.monotonic()))
            after = load.since(broken_at + 5.0)
        assert {replica for replica, _ in after} == {0, 1, 2}  # every Envoy served meanwhile
        assert after and all(s.backend == "med-v1" and s.status == 200 for _, s in after)
        status = fleet.status(1)
        state = status["rollouts"]["clinical"]
        assert state["reason"].startswith("error_rate") and state["version"] >= 2
        assert status["leader"] == fleet.status(0)["leader"] == fleet.status(2)["leader"]

        # Nothing from a prompt or a response is in Redis: names, counts, latencies.
        client = redis.Redis(port=fleet.redis.port)
        dump = b" ".join(
            key + b" " + b" ".join(v for kv in client.hgetall(key).items() for v in kv)
            if client.type(key) == b"hash"
            else key
            for key in client.scan_iter()
        )
        client.close()
        assert b"cough" not in dump and b"symptom" not in dump and b"fake" not in dump


def test_operator_actions_reach_the_fleet_and_a_restarted_replica_stays_rolled_back(
    tmp_path: Path,
) -> None:
    with running_fleet(tmp_path, canary_config(), replicas=3) as fleet:
        url = [f"http://127.0.0.1:{stack.metrics_port}" for stack in fleet.replicas]
        subprocess.run([SWITCHYARD, "rollout", "pause", "clinical", "--url", url[0]], check=True)
        paused_at = time.monotonic()
        wait_until(lambda: fleet.rollout(2, "clinical")["phase"] == "paused", 5, "pause on 2")
        assert time.monotonic() - paused_at < 1.0

        subprocess.run([SWITCHYARD, "rollout", "rollback", "clinical", "--url", url[1]], check=True)
        wait_until(lambda: set(phases(fleet)) == {"rolled_back"}, 5, "rollback everywhere")
        fleet.replicas[2].stop_switchyard(signal.SIGKILL)
        fleet.replicas[2].start_switchyard()
        # Serving again: it did not re-open the canary at the config's 10 %.
        assert fleet.rollout(2, "clinical")["phase"] == "rolled_back"
        client = Client(fleet.replicas[2].port)
        backends = {
            client.chat(PROMPT, headers={"x-session-id": f"after-{i}"}).backend for i in range(200)
        }
        client.close()
        assert backends == {"med-v1"}

        status = subprocess.run(
            [SWITCHYARD, "rollout", "status", "--url", url[2]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "clinical" in status and "rolled_back" in status and "leader:" in status
        assert "store: redis (reachable)" in status


def test_redis_away_under_load_fails_no_request_and_promotes_nothing(tmp_path: Path) -> None:
    config = canary_config(hold={"seconds": 4, "requests": 5})
    with running_fleet(tmp_path, config, replicas=2) as fleet, SpreadLoad(fleet) as load:
        wait_until(lambda: fleet.rollout(0, "clinical")["percent"] == 25, 30, "first promotion")
        fleet.redis.stop(signal.SIGKILL)
        stopped_at = time.monotonic()
        wait_until(
            lambda: (
                not fleet.status(0)["store_available"] and not fleet.status(1)["store_available"]
            ),
            5,
            "both replicas to notice",
        )
        percents = set()
        while time.monotonic() - stopped_at < 6.0:
            percents |= {fleet.rollout(i, "clinical")["percent"] for i in range(2)}
            time.sleep(0.2)
        assert percents == {25}  # the hold (4 s) passed, but nothing is promoted
        metrics = fleet.replicas[0].metrics_text()
        assert "switchyard_state_store_up 0.0" in metrics
        down = load.since(stopped_at)
        fleet.redis.start()  # back, empty, on the same port
        wait_until(
            lambda: all(fleet.status(i)["store_available"] for i in range(2)), 10, "reconnect"
        )
        wait_until(
            lambda: (
                fleet.rollout(0, "clinical")["percent"] >= 50
                and fleet.rollout(0, "clinical")["version"]
                == fleet.rollout(1, "clinical")["version"]
            ),
            20,
            "promotions again, in agreement",
        )
    assert down and all(s.status == 200 for _, s in down), [s for s in down if s[1].status != 200]
    assert all(s.status == 200 for _, s in load.sent)
