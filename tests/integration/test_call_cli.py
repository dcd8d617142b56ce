"""``genapi call`` as a subprocess against a real gateway and ``tests.services.modes`` workers:
results as JSON lines, streams chunk by chunk, the exit statuses (1 error answer, 2 usage,
3 no gateway), tokens from the environment or minted with ``--user``, and MessagePack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid

import pytest

from gateway_app.auth import mint_token
from gateway_app.processes import free_port, wait_until

from .conftest import ROOT, SECRET


@pytest.fixture
def genapi_call(modes_stack):
    """Run ``genapi call ARGS`` against the modes gateway, as alice (GENAPI_TOKEN) unless told."""
    url = f"ws://127.0.0.1:{modes_stack.gateway.port}/ws"

    def run(*args: str, token: str | None = "alice", url: str = url) -> subprocess.CompletedProcess:
        env = {"GENAPI_TOKEN": mint_token(SECRET, token, ["admin"], None, 600)} if token else {}
        return modes_stack.cli("call", *args, "--url", url, **env)

    return run


def lines(done: subprocess.CompletedProcess) -> list:
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_prints_the_result(genapi_call):
    done = genapi_call("modes", "async_double", "n=21")
    assert (done.returncode, lines(done)) == (0, [42]), done.stderr
    done = genapi_call("gateway", "ping")
    assert (done.returncode, lines(done)) == (0, ["pong"]), done.stderr


def test_a_stream_prints_one_line_per_chunk(genapi_call):
    done = genapi_call("modes", "count_last", "n=3")
    assert (done.returncode, lines(done)) == (0, [0, 1, 2, "last"]), done.stderr
    done = genapi_call("modes", "pushed", "n=2", "--msgpack")
    assert (done.returncode, lines(done)) == (0, [{"i": 0}, {"i": 1}, {"done": 2}]), done.stderr


def test_json_arguments_and_pairs_merge(genapi_call):
    assert lines(genapi_call("modes", "count", "--json", '{"n": 2}')) == [0, 1]
    done = genapi_call("modes", "count", "n=1", "--json", '{"n": 5}')  # pairs first, then the options
    assert (done.returncode, lines(done)) == (0, [0]), done.stderr


def test_an_error_answer_exits_1(genapi_call):
    done = genapi_call("modes", "nope")
    assert done.returncode == 1 and done.stdout == ""
    assert "unsupported function: nope version latest (can_retry: false)" in done.stderr
    done = genapi_call("modes", "count", "n=many")  # not JSON: sent as the string "many"
    assert done.returncode == 1
    assert 'Invalid arguments: "n" must be a number, got string "many"' in done.stderr
    done = genapi_call("modes", "count_fail", "n=2")
    assert (done.returncode, lines(done)) == (1, [0, 1])  # the chunks, then the error
    assert "Internal Server Error" in done.stderr


def test_no_token_says_how_to_get_one(genapi_call):
    done = genapi_call("modes", "count", "n=1", token=None)
    assert done.returncode == 1
    assert "Authentication required" in done.stderr and "GENAPI_TOKEN" in done.stderr


def test_user_mints_a_token_with_the_configured_secret(genapi_call, modes_stack):
    url = f"ws://127.0.0.1:{modes_stack.gateway.port}/ws"
    done = modes_stack.cli("call", "modes", "async_double", "n=2", "--url", url, "--user", "carol")
    assert (done.returncode, lines(done)) == (0, [4]), done.stderr


def test_usage_errors_exit_2(genapi_call):
    for args in (("modes", "count", "n"), ("modes", "count", "--json", "[1]"), ("modes", "count", "--json", "{"),
                 ("modes", "count", "--token", "t", "--user", "u")):
        done = genapi_call(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip()


def test_an_unreachable_gateway_exits_3(genapi_call):
    done = genapi_call("modes", "count", "n=1", url=f"ws://127.0.0.1:{free_port()}/ws")
    assert done.returncode == 3
    assert "cannot connect to ws://127.0.0.1:" in done.stderr


def test_a_none_function_is_sent_and_answers_nothing(genapi_call, modes_stack):
    mark = f"n-{uuid.uuid4().hex[:8]}"
    done = genapi_call("modes", "none_mark", f"mark={mark}")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    wait_until(lambda: modes_stack.redis.get(mark) is not None, 10, "the none function ran")


def test_ctrl_c_stops_a_running_stream(modes_stack):
    name = f"c-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "gateway_app", "call", "modes", "ticker", f"mark={name}", "ms=50",
            "--url", f"ws://127.0.0.1:{modes_stack.gateway.port}/ws"]
    env = modes_stack.env(GENAPI_TOKEN=mint_token(SECRET, "alice", [], None, 600))
    process = subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
    try:
        assert [json.loads(process.stdout.readline()) for _ in range(3)] == [0, 1, 2]  # as they arrive
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stdout.close()
        process.stderr.close()
    wait_until(lambda: modes_stack.redis.get(f"{name}:closed") == b"yes", 10, "the producer stopped")
