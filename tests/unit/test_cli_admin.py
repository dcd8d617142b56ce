"""gateway_app.cli: the parser of ``genapi admin …``, ``cache-status`` and ``pushed-services``."""

from __future__ import annotations

import pytest

from gateway_app import admin_cli
from gateway_app.cli import build_parser


def parse(line: str):
    return build_parser().parse_args(line.split())


def refused(line: str, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        parse(line)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_admin_list_with_service_and_json():
    args = parse("admin list --service s --json")
    assert (args.command, args.verb, args.service, args.json) == ("admin", "list", "s", True)
    assert args.admin_func is admin_cli.cmd_list


def test_admin_list_defaults():
    args = parse("admin list")
    assert args.service is None and args.json is False


@pytest.mark.parametrize("verb", ["disable", "enable", "delete"])
def test_admin_change_verbs_with_version(verb):
    args = parse(f"admin {verb} svc fn --version 1.0.0")
    assert (args.verb, args.service, args.request_type, args.version, args.json) == (verb, "svc", "fn", "1.0.0",
                                                                                     False)
    assert callable(args.admin_func)


def test_admin_disable_every_version_by_default():
    args = parse("admin disable svc fn --json")
    assert args.version is None and args.json is True


@pytest.mark.parametrize("verb", ["disable", "enable", "delete"])
def test_admin_change_verbs_need_service_and_function(verb, capsys):
    refused(f"admin {verb} svc", capsys)


def test_admin_failed_configs_with_filters():
    args = parse("admin failed-configs --source push --limit 5")
    assert (args.verb, args.source, args.limit, args.service, args.clear, args.json) == \
        ("failed-configs", "push", 5, None, False, False)
    assert args.admin_func is admin_cli.cmd_failed_configs


def test_admin_failed_configs_defaults_and_other_options():
    args = parse("admin failed-configs")
    assert (args.source, args.limit, args.service, args.clear) == (None, 100, None, False)
    args = parse("admin failed-configs --source pull --service billing --clear --json")
    assert (args.source, args.service, args.clear, args.json) == ("pull", "billing", True, True)


def test_admin_failed_configs_refuses_another_source(capsys):
    err = refused("admin failed-configs --source other", capsys)
    assert "invalid choice: 'other'" in err


def test_admin_failed_configs_refuses_a_non_integer_limit(capsys):
    refused("admin failed-configs --limit many", capsys)


def test_admin_pull_every_service():
    args = parse("admin pull")
    assert (args.verb, args.service, args.no_wait, args.json) == ("pull", None, False, False)
    assert args.admin_func is admin_cli.cmd_pull
    assert args.needs_settings is True


def test_admin_pull_one_service_without_waiting():
    args = parse("admin pull svc --no-wait")
    assert (args.service, args.no_wait) == ("svc", True)


def test_admin_verify():
    args = parse("admin verify svc v1")
    assert (args.verb, args.service, args.config_version) == ("verify", "svc", "v1")
    assert args.admin_func is admin_cli.cmd_verify


def test_admin_verify_needs_a_config_version(capsys):
    refused("admin verify svc", capsys)


@pytest.mark.parametrize("state", ["on", "off"])
def test_admin_detail_error(state):
    args = parse(f"admin detail-error {state}")
    assert (args.verb, args.state) == ("detail-error", state)
    assert args.admin_func is admin_cli.cmd_detail_error


@pytest.mark.parametrize("state", ["maybe", "ON", "true"])
def test_admin_detail_error_refuses_other_states(state, capsys):
    err = refused(f"admin detail-error {state}", capsys)
    assert f"invalid choice: '{state}'" in err


def test_admin_detail_error_needs_a_state(capsys):
    refused("admin detail-error", capsys)


def test_admin_needs_a_verb(capsys):
    refused("admin", capsys)


def test_admin_refuses_an_unknown_verb(capsys):
    refused("admin explode", capsys)


def test_cache_status_json():
    args = parse("cache-status --json")
    assert (args.command, args.json) == ("cache-status", True)
    assert args.admin_func is admin_cli.cmd_cache_status


def test_pushed_services():
    args = parse("pushed-services")
    assert (args.command, args.json) == ("pushed-services", False)
    assert args.admin_func is admin_cli.cmd_pushed_services


def test_non_admin_commands_have_no_admin_func():
    assert not hasattr(parse("token alice"), "admin_func")
