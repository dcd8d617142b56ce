"""The public names of both packages are pinned: tests and docs depend on them."""

from __future__ import annotations

import importlib

import pytest

import gateway_app
import workers

WORKERS_API = [
    "ArgSpec",
    "ArgumentError",
    "FunConfig",
    "FunConfigError",
    "FunConfigSchema",
    "Function",
    "GenApi",
    "GenApiError",
    "MaxBytes",
    "MaxItemBytes",
    "MaxItems",
    "Settings",
    "SettingsError",
    "create_celery_app",
    "load_funconfig",
]

GATEWAY_API = ["Gateway", "Identity", "create_app", "mint_token", "token_authenticator", "verify_token"]


def test_workers_all_is_pinned():
    assert sorted(workers.__all__) == WORKERS_API
    assert len(workers.__all__) == len(set(workers.__all__))


def test_gateway_app_all_is_pinned():
    assert sorted(gateway_app.__all__) == GATEWAY_API
    assert len(gateway_app.__all__) == len(set(gateway_app.__all__))


@pytest.mark.parametrize("name", WORKERS_API)
def test_workers_names_importable(name):
    module = importlib.import_module("workers")
    assert getattr(module, name) is not None
    namespace: dict = {}
    exec(f"from workers import {name}", namespace)  # the spelling users write
    assert namespace[name] is getattr(module, name)


@pytest.mark.parametrize("name", GATEWAY_API)
def test_gateway_names_importable(name):
    namespace: dict = {}
    exec(f"from gateway_app import {name}", namespace)
    assert namespace[name] is getattr(gateway_app, name)
    assert namespace[name] is not None


def test_star_import():
    namespace: dict = {}
    exec("from workers import *", namespace)
    assert set(WORKERS_API) <= set(namespace)
    namespace = {}
    exec("from gateway_app import *", namespace)
    assert set(GATEWAY_API) <= set(namespace)


def test_documented_imports():
    from gateway_app import Gateway, create_app
    from workers import GenApi, GenApiError

    assert callable(create_app) and isinstance(Gateway, type)
    assert isinstance(GenApi, type) and issubclass(GenApiError, Exception)


def test_public_names_come_from_their_modules():
    from gateway_app.app import create_app
    from gateway_app.auth import Identity, mint_token, token_authenticator, verify_token
    from gateway_app.extension import Gateway
    from workers.genapi import GenApi

    assert gateway_app.create_app is create_app
    assert gateway_app.Gateway is Gateway
    assert gateway_app.Identity is Identity
    assert gateway_app.mint_token is mint_token
    assert gateway_app.verify_token is verify_token
    assert gateway_app.token_authenticator is token_authenticator
    assert workers.GenApi is GenApi


def test_unknown_gateway_attribute():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        gateway_app.nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from gateway_app import nope", {})


def test_workers_package_does_not_import_flask():
    import subprocess
    import sys

    code = "import sys, workers, workers.worker, workers.runtime; print('flask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
