"""The multi-host deployment files, checked statically: no Docker engine runs on this machine kind,
so `docker compose config` cannot. The compose file is validated against the Compose
Specification's JSON schema (tests/data/compose_spec.json), and then against this project: every
RAG_ variable is a real setting, every command parses with the real CLI, the image copies every
package, and the services the others depend on exist.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import typer
import yaml

from cli.main import app as rag_cli
from core.settings import FLAT_NAMES, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
RAG_SERVICES = ("api", "worker", "beat", "flower")


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests/data/compose_spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(COMPOSE)


def test_the_deployment_has_every_part() -> None:
    assert {"qdrant", "redis", "postgres", "api", "worker", "beat", "flower"} <= set(SERVICES)
    assert SERVICES["beat"]["deploy"]["replicas"] == 1  # one scheduler, or scans double up
    assert SERVICES["api"]["deploy"]["replicas"] >= 2
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("./", "/", "$")) or source in COMPOSE["volumes"], volume


@pytest.mark.parametrize("service", RAG_SERVICES)
def test_rag_variables_are_real_settings(service: str) -> None:
    env = SERVICES[service]["environment"]
    names = set(Settings.model_fields) | set(FLAT_NAMES)
    unknown = [
        k for k in env if k.startswith("RAG_") and k.removeprefix("RAG_").lower() not in names
    ]
    assert not unknown
    # What makes several processes share one index, queue and graph.
    assert env["RAG_INDEX_MODE"] == "server" and env["RAG_QDRANT_URL"].startswith("http://qdrant")
    assert env["RAG_REDIS_URL"].startswith("redis://redis") and env["RAG_GRAPH_STORE"] == "redis"
    assert (
        env["RAG_STATE_URL"].startswith("postgresql+psycopg://")
        and "@postgres:" in env["RAG_STATE_URL"]
    )


def test_no_two_containers_share_a_folder() -> None:
    """Issue 25: what processes must agree on is in PostgreSQL, so API and worker containers may
    run on different hosts; a named volume is a database's or engine's own."""
    owners: dict[str, list[str]] = {}
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source in COMPOSE["volumes"]:
                owners.setdefault(source, []).append(name)
    assert all(
        len(names) == 1 and names[0] in ("qdrant", "redis", "postgres") for names in owners.values()
    ), owners


@pytest.mark.parametrize("service", ["api", "worker"])
def test_rag_commands_parse_with_the_real_cli(service: str) -> None:
    argv = SERVICES[service]["command"]
    assert argv[0] == "rag"
    group = typer.main.get_command(rag_cli)
    command = group.get_command(group.context_class(group), argv[1])  # type: ignore[attr-defined]
    assert command is not None, argv
    command.make_context(argv[1], list(argv[2:]))  # raises on an unknown option or bad value
    with pytest.raises(Exception, match="No such option"):
        command.make_context(argv[1], ["--no-such-option"])


@pytest.mark.parametrize("service", ["beat", "flower"])
def test_celery_commands_name_this_app(service: str) -> None:
    assert SERVICES[service]["command"][:3] == ["celery", "-A", "workers.main"]


def test_the_image_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.MULTILINE))
    assert set(packages) == copied
    assert "torch==2.13.0" in dockerfile and "download.pytorch.org/whl/cpu" in dockerfile
    # flower comes with the image: the extras it installs by default include deploy
    extras = re.search(r"^ARG EXTRAS=(\S+)$", dockerfile, re.M)
    assert extras is not None and "deploy" in extras.group(1).split(",")
    assert 'pip install ".[${EXTRAS}]"' in dockerfile
    assert any("flower" in d for d in pyproject["project"]["optional-dependencies"]["deploy"])
