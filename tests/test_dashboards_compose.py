"""docker-compose.yml checked without Docker: it parses, its files exist, its commands are real.

Docker cannot run here, so each part of `docker compose up` that can be checked is: every bind-mounted
file exists, every `shopfloor` command and option resolves in the real CLI (with required options
given on the command line or by the service's environment), the boards service writes where Grafana
reads, the broker keeps the local stack's data-keeping options, and the demo line is the same line
in the scenario, the plant file and the plan.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml

from dashboards.config import load_config
from dashboards.provisioning import build
from shopfloor.cli import _mount_subcommands, app
from shopfloor.plan import load_plan
from shopfloor.plant import load_plant

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def cli():
    """The real `shopfloor` command tree (typer vendors its own click: checked by duck typing)."""
    _mount_subcommands()
    return typer.main.get_command(app)


def _shopfloor_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items()
            if service.get("image") == "shopfloor:local"}


def test_the_demo_has_every_part(compose):
    services = compose["services"]
    assert {"mosquitto", "influxdb", "grafana", "collector", "analysis", "line"} <= set(services)
    assert services["influxdb"]["image"].startswith("influxdb:1.11")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on a missing service {needed}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose["volumes"], f"{name} uses an undeclared volume {source}"


def test_the_image_is_built_from_the_repository(compose):
    for service in _shopfloor_services(compose).values():
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["shopfloor"]' in dockerfile


def _resolve(cli, args: list[str]):
    command = cli
    while hasattr(command, "commands"):
        name, args = args[0], args[1:]
        assert name in command.commands, f"`shopfloor` has no sub-command {name!r} (see shopfloor --help)"
        command = command.commands[name]
    return command, args


SHELL_WORDS = {";", "&&", "||", "do", "done", "then", "fi", ">", "2>", "|"}


def _invocations(service: dict) -> list[list[str]]:
    """The `shopfloor` argument lists a service runs: its command, or each one in its `sh -c` script."""
    if service.get("entrypoint", ["shopfloor"])[:2] != ["sh", "-c"]:
        return [list(service["command"])]
    words = shlex.split(" ".join(service["command"]).replace(";", " ; "))
    found = []
    for index, word in enumerate(words):
        if word == "shopfloor":
            args = []
            for arg in words[index + 1:]:
                if arg in SHELL_WORDS:
                    break
                args.append(arg)
            found.append(args)
    assert found, "a shell service of the shopfloor image that runs no shopfloor command"
    return found


def test_every_command_is_a_real_shopfloor_command(compose, cli):
    for name, service in _shopfloor_services(compose).items():
        for args in _invocations(service):
            _check_invocation(cli, name, service, args)


def _check_invocation(cli, name: str, service: dict, args: list[str]) -> None:
    """The sub-command exists, its options exist, its required options and arguments are given."""
    command, args = _resolve(cli, args)
    options = {opt: param for param in command.params if param.param_type_name == "option"
               for opt in param.opts}
    given = {arg for arg in args if arg.startswith("--")}
    for option in given:
        assert option in options, f"{name}: {command.name} has no option {option}"
    environment = service.get("environment", {})
    for param in command.params:
        if not param.required:
            continue
        if param.param_type_name == "option":
            by_env = param.envvar and param.envvar in environment
            assert set(param.opts) & given or by_env, f"{name}: {command.name} needs {param.opts[0]}"
    positional = [arg for index, arg in enumerate(args)
                  if not arg.startswith("--") and (index == 0 or not args[index - 1].startswith("--")
                                                   or _is_flag(options.get(args[index - 1])))]
    wanted = [param for param in command.params if param.param_type_name == "argument" and param.required]
    assert len(positional) >= len(wanted), f"{name}: {command.name} needs {[p.name for p in wanted]}"


def _is_flag(option) -> bool:
    return bool(option and option.is_flag)


def test_boards_service_writes_where_grafana_reads(compose, tmp_path):
    services = compose["services"]
    boards, grafana = services["boards"], services["grafana"]
    out = boards["command"][boards["command"].index("--out") + 1]
    volume = next(v for v in boards["volumes"] if v.endswith(f":{out}"))
    mounted = next(v for v in grafana["volumes"] if v.startswith(volume.split(":")[0] + ":"))
    assert mounted.split(":")[1] == "/etc/grafana/provisioning"
    assert grafana["depends_on"]["boards"]["condition"] == "service_completed_successfully"
    # run the boards service's build here, with the compose's files
    config = load_config(ROOT / "docker" / "plant.toml", ROOT / "docker" / "plan.toml",
                         influx_url=boards["command"][boards["command"].index("--influx-url") + 1])
    written = build(tmp_path, config)
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    inside = {"/etc/grafana/provisioning/" + str(path.relative_to(tmp_path)) for path in written}
    assert home in inside
    assert any(path.endswith(".json") and path.startswith(config.boards_path) for path in inside)


def _options(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            found.setdefault(key, []).append(value)
    return found


def test_broker_keeps_the_local_stacks_data_options():
    local = _options(ROOT / "shopfloor" / "servers" / "mosquitto.conf")
    docker = _options(ROOT / "docker" / "mosquitto.conf")
    for key, values in local.items():
        placeholder = key.startswith("$") or any(re.search(r"\$\w", value) for value in values)
        if placeholder or key in ("listener", "log_dest", "user"):
            continue  # placeholders and where-it-runs settings differ by design
        assert docker.get(key) == values, f"docker/mosquitto.conf: {key} differs from the local stack's"
    assert docker["listener"] == ["1883 0.0.0.0"]


def test_demo_line_is_the_same_in_scenario_plant_and_plan():
    from simulators.scenario import load_scenario

    plant = load_plant(ROOT / "docker" / "plant.toml")
    assert load_scenario(ROOT / "docker" / "scenario.toml").plant == plant
    plan = load_plan(ROOT / "docker" / "plan.toml")
    assert {goal.line for goal in plan.objective} == {line.id for line in plant.lines}
    assert plan.calendar.timezone == plant.timezone
