"""A promotion in lockstep across a fleet's replicas: no session ever changes backend but
the ones the new share moves. Its own file (about a minute): the suite's workers take a
file each, and test_fleet.py alone kept one of them busy for three."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from extproc.request.session import cohort_bucket
from tests.e2e.fleet import running_fleet
from tests.e2e.stack import SWITCHYARD, Client, canary_config, wait_until
from tests.e2e.test_fleet import PROMPT

pytestmark = pytest.mark.e2e


def test_promotion_in_lockstep_keeps_every_session_on_its_backend(tmp_path: Path) -> None:
    config = canary_config(percent=5, steps=[5, 10, 100], auto=False)
    sessions = [f"lockstep-{i}" for i in range(2000)]
    with running_fleet(tmp_path, config, replicas=2) as fleet:
        seen: dict[str, list[str]] = defaultdict(list)
        promoted_at: list[float] = []

        def send_round(round_index: int, part: int, parts: int) -> None:
            clients = [Client(stack.port) for stack in fleet.replicas]
            try:
                for i in range(part, len(sessions), parts):
                    session = sessions[i]
                    client = clients[(i + round_index) % 2]  # alternate Envoys
                    reply = client.chat(PROMPT, headers={"x-session-id": session})
                    assert reply.status == 200, reply.body
                    seen[session].append(reply.backend)
            finally:
                for client in clients:
                    client.close()

        def rounds(first: int, last: int) -> None:
            for round_index in range(first, last):
                workers = [
                    threading.Thread(target=send_round, args=(round_index, p, 6)) for p in range(6)
                ]
                for worker in workers:
                    worker.start()
                if round_index == 1:
                    time.sleep(0.5)
                    promote = subprocess.run(
                        [
                            SWITCHYARD,
                            "rollout",
                            "promote",
                            "clinical",
                            "--url",
                            f"http://127.0.0.1:{fleet.replicas[0].metrics_port}",
                            "--json",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    promoted_at.append(time.monotonic())
                    assert '"percent": 10' in promote.stdout
                    wait_until(
                        lambda: fleet.rollout(1, "clinical")["percent"] == 10, 5, "replica 1"
                    )
                    promoted_at.append(time.monotonic())
                for worker in workers:
                    worker.join()

        rounds(0, 4)
        print(f"promotion reached the other replica in {promoted_at[1] - promoted_at[0]:.3f}s")
        assert promoted_at[1] - promoted_at[0] < 1.0
        assert {fleet.rollout(i, "clinical")["percent"] for i in range(2)} == {10}

    moved = 0
    for session, backends in seen.items():
        bucket = cohort_bucket("clinical", session)
        assert len(backends) == 4
        if bucket < 500:
            assert set(backends) == {"med-v2"}, (session, backends)
        elif bucket >= 1000:
            assert set(backends) == {"med-v1"}, (session, backends)
        else:
            # Moved by the promotion: stable until it, canary from then on, never back.
            first_canary = backends.index("med-v2") if "med-v2" in backends else 4
            assert backends == ["med-v1"] * first_canary + ["med-v2"] * (4 - first_canary)
            moved += first_canary < 4
    assert moved > 0
