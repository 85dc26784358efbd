"""The container files: compose.yaml validates with docker-compose, the Dockerfile's structure.

There is no container engine here, so nothing is built or started: Debian's docker-compose (v1)
parses and validates a compose file without one, and the Dockerfile is checked by a small
parser of its instructions (multi-stage, slim base, unprivileged user, the CLI as entry point).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from emingest.config import load_settings
from emingest.storage import S3Root

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"


# -- compose.yaml -----------------------------------------------------------------------------


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return subprocess.run(
        [binary, "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
        env={"PATH": "/usr/bin:/bin"},  # no .env or COMPOSE_* of the caller
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    done = compose_config(COMPOSE)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_has_the_scaled_deployment(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "minio",
        "minio-bucket",
        "scheduler",
        "worker",
        "api",
        "ingest",
    }
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["scheduler"]["entrypoint"][:2] == ["dask", "scheduler"]
    worker = services["worker"]["entrypoint"]
    assert worker[:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert services["api"]["command"][0] == "serve"


def test_emingest_services_share_one_image_and_settings(compose: dict) -> None:
    services = compose["services"]
    ours = ["scheduler", "worker", "api", "ingest"]
    bucket_command = " ".join(services["minio-bucket"]["command"])
    for name in ours:
        service = services[name]
        assert service["image"] == "emingest:latest", name
        assert Path(service["build"]["context"]) == REPO, name
        env = service["environment"]
        # the catalog URL points at the postgres service with its own user, password, database
        assert env["EMINGEST_CATALOG__URL"] == (
            "postgresql://emingest:emingest@postgres:5432/emingest"
        ), name
        assert env["EMINGEST_PIPELINE__SCHEDULER"] == "tcp://scheduler:8786", name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        # the environment is valid emingest settings, and the data root is the bucket that
        # minio-bucket creates, reached at MinIO with the credentials in the environment
        settings = load_settings(environ={k: str(v) for k, v in env.items()})
        root = settings.storage.root()
        assert isinstance(root, S3Root) and root.bucket in bucket_command, name
        assert root.kvstore("x")["endpoint"] == "http://minio:9000", name
        assert root.kvstore("x")["aws_credentials"] == {"type": "environment"}, name
        assert settings.storage.local_root == Path("/work"), name
        assert any(v.split(":")[:2] == ["work", "/work"] for v in service["volumes"]), name
    pg = services["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]) == ("emingest",) * 3
    assert (
        services["minio"]["environment"]["MINIO_ROOT_USER"]
        == (services["worker"]["environment"]["AWS_ACCESS_KEY_ID"])
    )
    # the driver runs on demand only (`docker compose run --rm ingest ...`)
    assert services["ingest"]["profiles"] == ["job"]


def test_compose_validation_catches_mistakes(tmp_path: Path) -> None:
    """The check above can fail: docker-compose rejects a file with a misspelt key."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    done = compose_config(broken)
    assert done.returncode != 0
    assert "healthchek" in done.stderr


# -- Dockerfile -------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(ARGs before the first FROM, stages): comments dropped, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "a continuation line ends the file"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            base = words[0]
            for key, value in global_args.items():
                base = base.replace("${" + key + "}", value)
            stages.append(Stage(base, name, []))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            key, _, value = args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_dockerfile_is_multi_stage_on_a_slim_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert all("slim" in s.base for s in stages)
    # the final stage takes the built environment from the build stage, and nothing is
    # compiled or installed with pip in it
    assert any(c.startswith(f"--from={build.name} ") for c in final.all("COPY"))
    assert not any("pip install" in r for r in final.all("RUN"))


def test_dockerfile_runs_the_cli_as_an_unprivileged_user(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    entry = final.all("ENTRYPOINT")
    assert entry and json.loads(entry[-1])[0] == "emingest"
    # the user is created in that stage, before it is switched to
    assert any("useradd" in r and users[-1] in r for r in final.all("RUN"))


def test_dockerfile_copies_only_what_exists(stages: list[Stage]) -> None:
    for stage in stages:
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_parser_reads_what_it_should() -> None:
    """The parser itself: a single-stage root image fails the checks above."""
    args, parsed = parse_dockerfile(
        'ARG IMG=python:3.11\n# note\nFROM ${IMG}\nRUN a \\\n  && b\nCMD ["x"]\n'
    )
    assert args == {"IMG": "python:3.11"}
    [stage] = parsed
    assert stage.base == "python:3.11" and stage.name is None
    assert stage.all("RUN") == ["a && b"]
    assert stage.all("USER") == []
