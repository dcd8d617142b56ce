"""What Flower gets to see, without a broker: task events only when asked (``worker_argv``),
``genapi flower``'s secrets in the environment (``flower_argv``, ``cmd_flower``), the
``sensitive`` option, and the redacted argument reprs the dispatchers write."""

from __future__ import annotations

import json
import os
from base64 import b64decode

import pytest
from celery.utils.imports import symbol_by_name
from kombu.message import Message

from gateway_app import cli
from gateway_app.dispatch import (
    CeleryDispatcher,
    RedisQueueDispatcher,
    event_channel,
    kwargs_repr,
    sent_event_message,
    task_message,
)
from workers import GenApi
from workers.errors import FunConfigError
from workers.funconfig import load_funconfig
from workers.settings import Settings
from workers.worker import RedactedRequest, build_app, worker_argv

AUTH = "ops:pa55-w0rd"
BROKER = "redis://:broker-secret@127.0.0.1:6390/2"


@pytest.fixture(scope="module")
def services():
    return [GenApi("flower_orders")]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No GENAPI_* or FLOWER_* variable of the shell running the tests leaks in."""
    for name in [n for n in os.environ if n.startswith(("GENAPI_", "FLOWER_"))]:
        monkeypatch.delenv(name)


# ------------------------------------------------------------------ worker_argv and -E


def test_worker_sends_no_task_events_unless_asked(services):
    assert "-E" not in worker_argv(services, [])
    assert "-E" not in worker_argv(services, ["-c", "2"], task_events=False)


def test_task_events_setting_adds_one_flag(services):
    argv = worker_argv(services, ["-c", "2"], task_events=True)
    assert argv.count("-E") == 1
    assert argv[-2:] == ["-c", "2"]  # the user's options still come last


@pytest.mark.parametrize("flag", ["-E", "--task-events", "--events"])
@pytest.mark.parametrize("task_events", [False, True])
def test_a_users_own_events_flag_passes_through_once(services, flag, task_events):
    argv = worker_argv(services, [flag, "-l", "info"], task_events=task_events)
    assert [a for a in argv if a in ("-E", "--task-events", "--events")] == [flag]
    assert argv[-3:] == [flag, "-l", "info"]


# ------------------------------------------------------------------ genapi flower


def test_basic_auth_goes_into_the_environment_not_the_command_line():
    argv, env = cli.flower_argv(Settings(broker_url=BROKER, flower_basic_auth=AUTH), "127.0.0.1", 5599)
    assert env["FLOWER_BASIC_AUTH"] == AUTH
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    assert not any("pa55-w0rd" in arg or "broker-secret" in arg for arg in argv), argv
    assert env["BROKER_URL"] == BROKER  # celery --broker's variable: the broker password stays off argv too
    assert argv[-3:] == ["flower", "--address=127.0.0.1", "--port=5599"]


def test_without_basic_auth_the_api_is_opened_explicitly():
    _argv, env = cli.flower_argv(Settings(broker_url=BROKER), "127.0.0.1", 5599)
    assert env["FLOWER_UNAUTHENTICATED_API"] == "true"
    assert "FLOWER_BASIC_AUTH" not in env


def test_flower_keeps_turning_events_on():
    argv, env = cli.flower_argv(Settings(), "127.0.0.1", 5599)
    assert not any("enable_events" in arg for arg in argv) and "FLOWER_ENABLE_EVENTS" not in env


@pytest.fixture
def exec_calls(monkeypatch):
    """``genapi flower`` records what it would exec instead of replacing the test process."""
    calls = []
    monkeypatch.setattr(cli, "_exec", lambda argv, env=None: calls.append((argv, env)))
    return calls


def test_cmd_flower_hands_the_setting_to_flower(monkeypatch, exec_calls, capsys):
    monkeypatch.setenv("GENAPI_FLOWER_BASIC_AUTH", AUTH)
    assert cli.main(["flower", "--port", "5599", "--wait-for-worker", "0"]) == 0
    (argv, env), = exec_calls
    assert env["FLOWER_BASIC_AUTH"] == AUTH and AUTH not in " ".join(argv)
    assert "open to anyone" not in capsys.readouterr().err


def test_cmd_flower_warns_when_open(exec_calls, capsys):
    assert cli.main(["flower", "--wait-for-worker", "0"]) == 0
    assert exec_calls[0][1]["FLOWER_UNAUTHENTICATED_API"] == "true"
    assert "GENAPI_FLOWER_BASIC_AUTH is not set" in capsys.readouterr().err


def test_cmd_flower_refuses_a_password_on_the_command_line(exec_calls):
    with pytest.raises(SystemExit, match="set GENAPI_FLOWER_BASIC_AUTH=user:password in the environment"):
        cli.main(["flower", "--basic-auth", AUTH])
    assert exec_calls == []


def test_cmd_flower_refuses_flowers_own_variable(monkeypatch, exec_calls):
    # it would turn auth on behind our back while we warn the API is open, or vice versa
    monkeypatch.setenv("FLOWER_BASIC_AUTH", AUTH)
    with pytest.raises(SystemExit, match="GENAPI_FLOWER_BASIC_AUTH instead"):
        cli.main(["flower", "--wait-for-worker", "0"])
    assert exec_calls == []


# ------------------------------------------------------------------ the sensitive option


def login_config(**options):
    return {"service": "acct", "request_type": "login", "arg_types": {"user": "string", "password": "string"},
            "arg_orders": ["user", "password"], **options}


def test_sensitive_names_declared_arguments():
    config = load_funconfig(login_config(sensitive=["password"]))
    assert config.sensitive == ("password",)
    assert load_funconfig(config.to_json()) == config  # what the gateway loads from the registry


def test_sensitive_is_left_out_of_the_json_when_empty():
    config = load_funconfig(login_config())
    assert config.sensitive == ()
    assert "sensitive" not in config.to_json()


def test_an_undeclared_sensitive_name_fails_at_import_naming_it():
    api = GenApi("acct_typo")
    with pytest.raises(FunConfigError, match="sensitive names argument 'pasword', which arg_types does not declare"):
        @api.function("login", arg_types={"user": "string", "password": "string"}, sensitive=["pasword"])
        def login(user, password):
            return user


@pytest.mark.parametrize("value", ["password", [""], [1], {"password": True}])
def test_sensitive_must_be_a_list_of_names(value):
    with pytest.raises(FunConfigError, match="sensitive must be a list of argument names"):
        load_funconfig(login_config(sensitive=value))


def test_the_decorator_accepts_sensitive():
    api = GenApi("acct_ok")

    @api.function("login", arg_types={"user": "string", "password": "string"}, sensitive=["password"])
    def login(user, password):
        return user

    assert login.genapi_config.sensitive == ("password",)


# ------------------------------------------------------------------ redaction by the dispatchers

ARGS = {"user": "ada", "password": "hunter2"}


def test_kwargs_repr_hides_sensitive_values_only():
    assert kwargs_repr(ARGS, ("password",)) == "{'user': 'ada', 'password': '***'}"
    assert kwargs_repr(ARGS) == repr(ARGS)


def test_task_message_redacts_the_repr_but_sends_the_values():
    message = task_message("acct.login", ARGS, "genapi.acct", 5, None, "gw@host", ("password",))
    assert "hunter2" not in json.dumps(message["headers"])
    assert message["headers"]["kwargsrepr"] == "{'user': 'ada', 'password': '***'}"
    assert json.loads(b64decode(message["body"]))[1] == ARGS  # the worker still gets the password


class RecordingApp:
    """Stands in for a Celery app: keeps ``send_task``'s options."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def send_task(self, name, **options):
        self.calls.append(options)
        return type("Result", (), {"id": "t-1"})()


def test_celery_dispatcher_writes_the_redacted_repr():
    app = RecordingApp()
    CeleryDispatcher(app).send("acct.login", ARGS, "genapi.acct", 5, None, sensitive=("password",))
    assert app.calls[0]["kwargsrepr"] == "{'user': 'ada', 'password': '***'}"
    assert app.calls[0]["kwargs"] == ARGS


class CommandLog:
    """Stands in for the redis-py client: records every command, and which ran in a pipeline."""

    def __init__(self) -> None:
        self.commands: list[tuple] = []

    def lpush(self, *args):
        self.commands.append(("lpush", *args))

    def publish(self, *args):
        self.commands.append(("publish", *args))

    def pipeline(self, transaction=True):
        log = self

        class Pipeline:
            def __init__(self) -> None:
                self.queued: list[tuple] = []

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def lpush(self, *args):
                self.queued.append(("lpush", *args))

            def publish(self, *args):
                self.queued.append(("publish", *args))

            def execute(self):
                log.commands.append(("pipeline", *self.queued))

        return Pipeline()


def dispatcher_with_log(task_events: bool) -> tuple[RedisQueueDispatcher, CommandLog]:
    dispatcher = RedisQueueDispatcher("redis://127.0.0.1:1/3", task_events=task_events)
    dispatcher.client = log = CommandLog()
    return dispatcher, log


def test_without_task_events_a_call_is_one_lpush():
    dispatcher, log = dispatcher_with_log(False)
    dispatcher.send("acct.login", ARGS, "genapi.acct", 5, None, sensitive=("password",))
    assert [command[0] for command in log.commands] == ["lpush"]


def test_with_task_events_the_sent_event_goes_out_in_the_same_round_trip():
    dispatcher, log = dispatcher_with_log(True)
    handle = dispatcher.send("acct.login", ARGS, "genapi.acct", 5, None, sensitive=("password",))
    (kind, push, publish), = log.commands
    assert (kind, push[0], publish[0]) == ("pipeline", "lpush", "publish")
    assert publish[1] == "/3.celeryev/task.sent" == event_channel(3, "task.sent")
    event = json.loads(b64decode(json.loads(publish[2])["body"]))
    assert (event["type"], event["uuid"], event["name"]) == ("task-sent", handle.task_id, "acct.login")
    assert event["kwargs"] == "{'user': 'ada', 'password': '***'}"
    assert (event["queue"], event["routing_key"]) == ("genapi.acct", "genapi.acct")


def test_sent_event_carries_what_celery_sends():
    message = task_message("acct.login", ARGS, "genapi.acct", 5, None, "gw@host", ("password",))
    envelope = sent_event_message(message, "genapi.acct")
    event = json.loads(b64decode(envelope["body"]))
    assert set(event) == {"hostname", "utcoffset", "pid", "clock", "uuid", "root_id", "parent_id", "name", "args",
                          "kwargs", "retries", "eta", "expires", "queue", "exchange", "routing_key", "timestamp",
                          "type"}
    assert event["hostname"] == envelope["headers"]["hostname"] == "gw@host"
    assert envelope["properties"]["delivery_info"] == {"exchange": "celeryev", "routing_key": "task.sent"}


# ------------------------------------------------------------------ the worker's remote control


def test_remote_control_reports_only_the_redacted_arguments():
    api = GenApi("acct_inspect")

    @api.function("login", arg_types={"user": "string", "password": "string"}, sensitive=["password"])
    def login(user, password):
        return user

    app = build_app(Settings(), [api])
    task = app.tasks[login.genapi_config.task_name]
    message = task_message(task.name, ARGS, "genapi.acct_inspect", 5, None, "gw@host", ("password",))
    request_cls = symbol_by_name(task.Request)
    assert issubclass(request_cls, RedactedRequest)
    request = request_cls(Message(body=b64decode(message["body"]), headers=message["headers"],
                                  content_type="application/json", content_encoding="utf-8", channel=None),
                          app=app, task=task)
    # what `celery inspect reserved` (Flower's worker page) asks for: the unsafe form
    assert request.info()["kwargs"] == "{'user': 'ada', 'password': '***'}"
    assert "hunter2" not in json.dumps(request.info(safe=False), default=str)
