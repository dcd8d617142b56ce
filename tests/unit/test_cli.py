"""gateway_app.cli (argument handling) and workers.worker.worker_argv."""

from __future__ import annotations

import os
import time

import pytest

from gateway_app.auth import Identity, verify_token
from gateway_app.cli import build_parser, main, split_worker_args
from workers.genapi import GenApi
from workers.protocol import service_queue
from workers.worker import worker_argv

# ------------------------------------------------------------------ split_worker_args


@pytest.mark.parametrize(
    ("argv", "ours", "celery"),
    [
        (["worker", "a.b", "c.d", "-c", "4", "-P", "threads"], ["worker", "a.b", "c.d"], ["-c", "4", "-P", "threads"]),
        (["worker", "mod", "--loglevel=info"], ["worker", "mod"], ["--loglevel=info"]),
        (["worker", "mod"], ["worker", "mod"], []),
        (["worker"], ["worker"], []),
        (["worker", "-h"], ["worker", "-h"], []),
        (["worker", "mod", "--help"], ["worker", "mod", "--help"], []),
        (["worker", "mod", "-h", "-c", "2"], ["worker", "mod", "-h"], ["-c", "2"]),
        (["token", "alice", "--roles", "a,b"], ["token", "alice", "--roles", "a,b"], []),
        (["gateway", "--port", "9000"], ["gateway", "--port", "9000"], []),
        ([], [], []),
    ],
)
def test_split_worker_args(argv, ours, celery):
    assert split_worker_args(argv) == (ours, celery)


def test_split_does_not_modify_input():
    argv = ["worker", "m", "-c", "1"]
    split_worker_args(argv)
    assert argv == ["worker", "m", "-c", "1"]


# ------------------------------------------------------------------------ parser


def test_token_defaults():
    args = build_parser().parse_args(["token", "alice"])
    assert (args.command, args.user, args.roles, args.device, args.ttl) == ("token", "alice", "", None, 86400)


def test_token_options():
    args = build_parser().parse_args(["token", "bob", "--roles", "admin,ops", "--device", "ph", "--ttl", "60"])
    assert (args.user, args.roles, args.device, args.ttl) == ("bob", "admin,ops", "ph", 60)


def test_token_ttl_must_be_integer(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["token", "bob", "--ttl", "soon"])
    assert info.value.code == 2
    assert "--ttl" in capsys.readouterr().err


def test_token_requires_user(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["token"])
    capsys.readouterr()


def test_command_required(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    capsys.readouterr()


def test_worker_modules():
    args = build_parser().parse_args(["worker", "a.b", "c"])
    assert args.modules == ["a.b", "c"]


def test_gateway_and_flower_defaults(monkeypatch):
    monkeypatch.delenv("GENAPI_HOST", raising=False)
    gw = build_parser().parse_args(["gateway"])
    assert (gw.host, gw.port, gw.workers, gw.worker_connections) == ("127.0.0.1", None, 1, 10000)
    fl = build_parser().parse_args(["flower", "--port", "5556"])
    assert (fl.host, fl.port, fl.wait_for_worker) == ("127.0.0.1", 5556, 30.0)


@pytest.fixture
def genapi_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("GENAPI_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GENAPI_SECRET_KEY", "cli-secret")


def test_token_command_mints_a_verifiable_token(genapi_env, capsys):
    assert main(["token", "alice", "--roles", " admin, ,ops ", "--device", "phone"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token("cli-secret", token) == Identity("alice", ("admin", "ops"), "phone")


def test_token_command_ttl(genapi_env, capsys):
    main(["token", "alice", "--ttl", "30"])
    token = capsys.readouterr().out.strip()
    assert verify_token("cli-secret", token) is not None
    assert verify_token("cli-secret", token, now=time.time() + 31) is None


def test_token_command_rejects_bad_ttl(genapi_env):
    with pytest.raises(SystemExit, match="genapi token: ttl must be a positive number"):
        main(["token", "alice", "--ttl", "0"])


def test_token_command_reports_bad_settings(monkeypatch):
    monkeypatch.setenv("GENAPI_PORT", "not-a-port")
    with pytest.raises(SystemExit, match="genapi: GENAPI_PORT must be an integer"):
        main(["token", "alice"])


# ------------------------------------------------------------------------ worker_argv


@pytest.fixture(scope="module")
def services():
    return [GenApi("orders"), GenApi("billing")]


def option_values(argv, *flags):
    """Every value given to one of ``flags`` (separate or ``--flag=value`` forms)."""
    values = []
    for index, arg in enumerate(argv):
        if arg in flags:
            values.append(argv[index + 1])
        for flag in flags:
            if flag.startswith("--") and arg.startswith(flag + "="):
                values.append(arg.split("=", 1)[1])
            elif not flag.startswith("--") and arg.startswith(flag) and arg != flag:
                values.append(arg[len(flag):])
    return values


def test_worker_argv_defaults(services):
    argv = worker_argv(services, [])
    assert argv[0] == "worker" and "-E" not in argv  # task events only when asked (test_flower_options.py)
    assert option_values(argv, "-Q", "--queues") == [f"{service_queue('orders')},{service_queue('billing')}"]
    assert service_queue("orders") == "genapi.orders"
    assert "--without-gossip" in argv and "--without-mingle" in argv
    assert option_values(argv, "-n", "--hostname") == [f"genapi-{os.getpid()}@%h"]


def test_worker_argv_passes_celery_options_through(services):
    argv = worker_argv(services, ["-c", "4", "-P", "threads", "-l", "info"])
    assert argv[-6:] == ["-c", "4", "-P", "threads", "-l", "info"]


@pytest.mark.parametrize("flag", ["-Q", "--queues"])
def test_worker_argv_merges_queues(services, flag):
    argv = worker_argv(services, ["-c", "2", flag, "extra,genapi.orders", "-l", "info"])
    assert option_values(argv, "-Q", "--queues") == ["genapi.orders,genapi.billing,extra"]
    assert argv[-4:] == ["-c", "2", "-l", "info"]


@pytest.mark.parametrize("celery_args", [["--queues=extra"], ["-Qextra"]])
def test_worker_argv_merges_attached_queue_values(services, celery_args):
    # BUG: only "-Q X" / "--queues X" are merged. Celery's -Q is not repeatable (the last one
    # wins), so "--queues=extra" or "-Qextra" silently replaces the service queues.
    argv = worker_argv(services, celery_args)
    queues = option_values(argv, "-Q", "--queues")
    assert len(queues) == 1, argv
    assert set(queues[0].split(",")) == {"genapi.orders", "genapi.billing", "extra"}


@pytest.mark.parametrize("name_args", [["-n", "w1@%h"], ["--hostname", "w1@%h"], ["--hostname=w1@%h"]])
def test_worker_argv_keeps_given_node_name(services, name_args):
    argv = worker_argv(services, name_args)
    assert option_values(argv, "-n", "--hostname") == ["w1@%h"]
    assert argv[-len(name_args):] == name_args


def test_worker_argv_deduplicates_queues():
    argv = worker_argv([GenApi("dup"), GenApi("dup")], ["-Q", "genapi.dup"])
    assert option_values(argv, "-Q", "--queues") == ["genapi.dup"]


def test_worker_argv_does_not_modify_input(services):
    celery_args = ["-Q", "extra", "-c", "1"]
    worker_argv(services, celery_args)
    assert celery_args == ["-Q", "extra", "-c", "1"]


def test_worker_argv_rejects_a_queue_flag_without_value():
    with pytest.raises(SystemExit, match="-Q needs a value"):
        worker_argv([GenApi("lonely")], ["-Q"])


def test_worker_reports_a_missing_module_without_a_traceback():
    from workers.worker import load_services

    with pytest.raises(SystemExit, match="cannot import 'no_such_module_here'"):
        load_services(["no_such_module_here"])


def test_worker_reports_an_invalid_config_naming_the_field():
    from workers.worker import load_services

    with pytest.raises(SystemExit, match="timeout: timeout must be an integer number of milliseconds"):
        load_services(["tests.services.broken_config"])
