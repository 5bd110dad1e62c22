"""The agent with its own broker credential over TLS (mqtts:// and `[mqtt] ca_file`), on a Mosquitto
secured by `shopfloor.security` (password file, ACL from the plant file, private CA).

A station the agent's ACL does not cover is refused by the broker: its samples stay in the outbox and
must not hold up the stations the agent may publish. A wrong password is a status problem and one
`agent check` line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from test_agent_support import RunningAgent, Subscriber, wait_for, write_config

from shopfloor import security
from shopfloor.plant import Plant
from shopfloor.stack import Server, free_port

pytestmark = pytest.mark.servers


@pytest.fixture
def secured(tmp_path, plant_id):
    plant = Plant.model_validate({"plant": plant_id, "line": [{"id": "l1", "station": [
        {"id": "s1", "buffer": 4, "ideal_cycle_s": 1.0, "agent": "pc-1"},
        {"id": "s2", "buffer": 4, "ideal_cycle_s": 1.0, "agent": "pc-1"},
        {"id": "s3", "buffer": 4, "ideal_cycle_s": 1.0}]}]})
    credentials = security.init([plant], tmp_path / "auth", tls=True)
    tls_port = free_port()
    broker = Server("mosquitto", tmp_path / "mosquitto", free_port(),
                    broker_auth=security.broker_config(tmp_path / "auth", tls_port, anonymous_line=False))
    broker.start()
    yield SimpleNamespace(credentials=credentials, plain=f"mqtt://127.0.0.1:{broker.port}",
                          tls=f"mqtts://localhost:{tls_port}", ca=tmp_path / "auth" / "ca.crt")
    broker.stop()


def test_agent_over_tls_with_its_own_credential_and_a_refused_station(secured, plant_id, tmp_path):
    agent_url = secured.credentials.url(f"{plant_id}.l1.pc-1", secured.tls)
    watcher = Subscriber(secured.credentials.url("monitor", secured.plain), plant_id)
    stations = {sid: f'{{ kind = "simulated", cycle_s = 0.2, seed = {n} }}'
                for n, sid in enumerate(("s1", "s2", "s3"))}  # s3 belongs to another agent
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=agent_url, agent="pc-1",
                          stations=stations, mqtt_extra=f'ca_file = "{secured.ca}"')
    running = RunningAgent(config)
    wait_for(lambda: len(watcher.seqs().get("s2", [])) >= 40, 20, "40 samples of s2 over TLS")
    problems = running.agent.problem_list()
    agent = running.stop()
    time.sleep(0.3)
    seqs = watcher.seqs()
    watcher.close()
    assert agent.link.client._ssl is not None  # the agent's connection really was TLS
    assert "s3" not in seqs  # refused by the broker: it stays on disk
    for station in ("s1", "s2"):  # the refused station did not hold the others up, nor break their order
        assert seqs[station] == list(range(len(seqs[station])))
    assert any("refused telemetry (Not authorized)" in problem for problem in problems), problems
    assert agent.outbox.backlog >= agent.tracks["s3"].next_seq > 0  # every s3 sample is still on disk


def test_a_wrong_password_is_a_problem_and_one_check_line(secured, plant_id, tmp_path):
    bad_url = f"mqtts://{plant_id}.l1.pc-1:Not-The-Secret@localhost:{secured.tls.rsplit(':', 1)[1]}"
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=bad_url, agent="pc-1",
                          stations={"s1": '{ kind = "simulated" }'}, mqtt_extra=f'ca_file = "{secured.ca}"')
    running = RunningAgent(config)
    wait_for(lambda: running.agent.problem_list(), 10, "the refusal reported")
    problems = running.agent.problem_list()
    running.stop()
    assert problems[0].startswith("broker refused the connection: ") and "password" in problems[0], problems
    done = subprocess.run([sys.executable, "-m", "edge_agent", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    refused = [line for line in done.stdout.splitlines() if line.startswith("problem")]
    assert len(refused) == 1 and "refused the agent" in refused[0], done.stdout
    assert "Not-The-Secret" not in done.stdout + done.stderr  # a password is never printed
