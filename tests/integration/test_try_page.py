"""The try-it page (``/``) and the browser client (``/static/genapi.js``) in a real headless
Chromium, driven through the DevTools protocol, against a real gateway and worker.

Chromium is Debian's ``chromium`` package; without it these tests fail (they are not skipped).
A screenshot of the page after a call is saved to ``test-artifacts/try-page.png``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import urllib.error
import urllib.request
import uuid

import msgpack
import pytest
from flask import Flask

from gateway_app import processes
from gateway_app.auth import mint_token, verify_token
from gateway_app.processes import free_port, wait_until
from gateway_app.trypage import try_page_blueprint
from workers.settings import Settings

from .cdp import CHROMIUM_MISSING, Chromium, Page, chromium_binary
from .conftest import ROOT, SECRET, GatewayProcess, Stack, _databases

SCREENSHOT = ROOT / "test-artifacts" / "try-page.png"
DEMO_FUNCTIONS = {"demo.hello", "demo.add", "demo.echo", "demo.whoami", "demo.count"}


def token(user: str, roles=("admin",)) -> str:
    return mint_token(SECRET, user, list(roles), None, 600)


def mark() -> str:
    return f"try-{uuid.uuid4().hex[:10]}"


def js(value) -> str:
    """A Python value as a JavaScript literal."""
    return json.dumps(value)


def http_get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def browser(tmp_path_factory, try_stack):
    """Headless Chromium. It needs ``try_stack`` only to be stopped before it: a browser's
    open keep-alive connections would hold the gateway's shutdown for its grace period."""
    binary = chromium_binary()
    if binary is None:
        pytest.fail(CHROMIUM_MISSING)
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium"))
    try:
        chromium.start()
        yield chromium
    finally:
        chromium.stop()


@pytest.fixture(scope="module")
def try_stack(redis_server, tmp_path_factory):
    """A worker serving the demo and two test services, and a gateway with the try-it
    page on, which offers the dev user's token (as ``genapi dev`` does)."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("trypage"))
    try:
        worker = stack.start_worker("workers.examples.demo", "tests.services.modes", "tests.services.sample")
        stack.gateway = stack.start_gateway(worker, GENAPI_TRY_PAGE="1",
                                            GENAPI_TRY_PAGE_TOKEN=token("dev-user"))
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def base_url(try_stack) -> str:
    return f"http://127.0.0.1:{try_stack.gateway.port}"


def open_page(browser: Chromium, url: str) -> Page:
    """Load the page and wait until it has listed the functions (it signs in by itself)."""
    page = browser.new_page(url)
    page.wait_for("document.body.dataset.ready === 'true'", what="the page starting")
    page.wait_for("document.querySelectorAll('#functions li').length > 0", what="the function list")
    return page


@pytest.fixture
def page(browser, base_url):
    """The page as the dev user (the token the gateway offers on loopback)."""
    tab = open_page(browser, base_url + "/")
    try:
        yield tab
    finally:
        browser.close_page(tab)


# ------------------------------------------------------------------ page helpers


def listed(page: Page) -> set[str]:
    return set(page.evaluate("[...document.querySelectorAll('#functions li')].map(li => li.dataset.function)"))


def select(page: Page, key: str) -> None:
    page.evaluate(f"document.querySelector('#functions li[data-function={js(key)}]').click()")
    page.wait_for(f"document.getElementById('fn-title').textContent === {js(key)} && "
                  "!document.getElementById('call-form').hidden", what=f"the form of {key}")


def fill(page: Page, arg: str, value: str) -> None:
    page.evaluate(f"""(() => {{
        const input = document.querySelector('[data-arg={js(arg)}]');
        input.value = {js(value)};
        input.dispatchEvent(new Event('input', {{bubbles: true}}));
    }})()""")


def click(page: Page, selector: str) -> None:
    page.evaluate(f"document.querySelector({js(selector)}).click()")


def outcome(page: Page) -> dict:
    return page.evaluate("""(() => ({
        status: document.getElementById('outcome').dataset.status,
        line: document.getElementById('status-line').textContent,
        error: document.getElementById('error-line').hidden ? null : document.getElementById('error').textContent,
        canRetry: document.getElementById('can-retry').dataset.canRetry,
        result: document.getElementById('result').hidden ? null
            : JSON.parse(document.getElementById('result').textContent),
        chunks: [...document.querySelectorAll('#chunks li')].map(li => JSON.parse(li.textContent)),
    }))()""")


def wait_outcome(page: Page, *statuses: str, timeout: float = 15) -> dict:
    page.wait_for(f"{js(list(statuses))}.includes(document.getElementById('outcome').dataset.status)", timeout,
                  f"an outcome of {statuses}")
    return outcome(page)


def frames(page: Page) -> list[dict]:
    """Every frame of the frames log: direction and the frame."""
    return page.evaluate("""[...document.querySelectorAll('#frames li')].map(li => ({
        direction: li.classList.contains('out') ? 'out' : 'in',
        frame: JSON.parse(li.querySelector('pre').textContent)}))""")


# ------------------------------------------------------------------ serving


def test_the_page_is_off_by_default(gateway):
    base = f"http://127.0.0.1:{gateway.port}"
    for path in ("/", "/static/genapi.js", "/static/tryit.js", "/try/config"):
        assert http_get(base + path)[0] == 404, path


def test_the_page_and_the_client_are_served(base_url):
    status, headers, body = http_get(base_url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/static/tryit.js"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    status, headers, body = http_get(base_url + "/static/genapi.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert b"export class GenApiClient" in body
    assert http_get(base_url + "/static/tryit.css")[1]["Content-Type"].startswith("text/css")
    assert http_get(base_url + "/static/index.html")[0] == 404  # only the named files
    assert http_get(base_url + "/static/../trypage.py")[0] == 404
    status, _, body = http_get(base_url + "/try/config")
    assert status == 200 and json.loads(body)["token"]  # the dev token, to a loopback client


def test_genapi_dev_serves_the_page_signed_in_as_the_dev_user(browser, tmp_path):
    port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
    env.update(GENAPI_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    log_path = tmp_path / "dev.log"
    with open(log_path, "ab") as log:
        dev = processes.spawn([sys.executable, "-m", "gateway_app", "dev", "--port", str(port),
                               "--flower-port", str(flower_port)], env=env, log=log, cwd=str(ROOT))
    try:
        wait_until(lambda: "CeleryGenApi is running" in log_path.read_text(errors="replace"), 120, "genapi dev", dev)
        assert f"http://127.0.0.1:{port}/" in log_path.read_text()  # the banner shows the page
        status, _, body = http_get(f"http://127.0.0.1:{port}/try/config")
        assert status == 200
        assert verify_token(SECRET, json.loads(body)["token"]).user_id == "dev-user"
        tab = open_page(browser, f"http://127.0.0.1:{port}/")
        try:
            assert DEMO_FUNCTIONS <= listed(tab)
            assert "dev-user" in tab.evaluate("document.getElementById('state').textContent")
        finally:
            browser.close_page(tab)
    finally:
        processes.stop(dev, grace=60)


def test_the_dev_token_is_offered_to_loopback_clients_only():
    app = Flask("trypage-test", static_folder=None)
    app.register_blueprint(try_page_blueprint(Settings(try_page=True, try_page_token="dev-token")))
    client = app.test_client()
    assert client.get("/try/config", environ_base={"REMOTE_ADDR": "127.0.0.1"}).json["token"] == "dev-token"
    assert client.get("/try/config", environ_base={"REMOTE_ADDR": "::1"}).json["token"] == "dev-token"
    assert client.get("/try/config", environ_base={"REMOTE_ADDR": "10.1.2.3"}).json["token"] is None
    app = Flask("trypage-test-2", static_folder=None)
    app.register_blueprint(try_page_blueprint(Settings(try_page=True)))
    assert app.test_client().get("/try/config").json["token"] is None


# ------------------------------------------------------------------ the page


def test_the_page_signs_in_as_the_dev_user_and_lists_the_demo_functions(page):
    page.wait_for("document.getElementById('state').dataset.state === 'open'", what="signed in")
    assert "dev-user" in page.evaluate("document.getElementById('state').textContent")
    names = listed(page)
    assert DEMO_FUNCTIONS <= names
    assert "modes.ticker" in names
    assert not any(name.startswith(("gateway.", "relay.")) for name in names)
    sent = [f["frame"] for f in frames(page) if f["direction"] == "out"]
    assert {"service": "gateway", "request_type": "functions"}.items() <= sent[0].items()


def test_a_form_call_shows_the_result_and_every_frame(page):
    select(page, "demo.hello")
    assert page.evaluate("document.querySelector('[data-arg=\"name\"]').value") == "world"  # the default
    fill(page, "name", "Ada")
    assert json.loads(page.evaluate("document.getElementById('args-preview').textContent")) == {"name": "Ada"}
    click(page, "#call")
    result = wait_outcome(page, "ok", "error")
    assert result["status"] == "ok", result
    assert result["result"] == {"greeting": "Hello, Ada!"}
    calls = [f for f in frames(page) if f["frame"]["request_id"] == frames(page)[-1]["frame"]["request_id"]]
    assert [f["direction"] for f in calls] == ["out", "in"]
    assert calls[0]["frame"]["args"] == {"name": "Ada"}
    assert calls[1]["frame"]["success"] is True
    SCREENSHOT.unlink(missing_ok=True)
    page.screenshot(SCREENSHOT)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 10_000


def test_the_form_follows_the_argument_schema(page):
    select(page, "demo.add")
    kinds = page.evaluate("Object.fromEntries([...document.querySelectorAll('#fields .field')]"
                          ".map(f => [f.dataset.field, f.dataset.kind]))")
    assert kinds == {"a": "number", "b": "number"}
    assert page.evaluate("document.querySelectorAll('#fields .required').length") == 2
    fill(page, "a", "2")
    fill(page, "b", "0.5")
    click(page, "#call")
    assert wait_outcome(page, "ok", "error")["result"] == 2.5
    select(page, "demo.whoami")
    assert page.evaluate("document.querySelector('#fields .no-args') !== null")


def test_every_argument_type_versions_and_none_calls(page):
    select(page, "sample.typed")  # every argument type, each allowing null
    kinds = page.evaluate("Object.fromEntries([...document.querySelectorAll('#fields .field')]"
                          ".map(f => [f.dataset.field, f.dataset.kind]))")
    assert kinds == {"s": "text", "n": "number", "b": "checkbox", "u": "text", "l": "json", "ls": "json",
                     "ln": "json", "lu": "json", "lm": "json", "m": "json", "a": "json", "dt": "text", "ndt": "text",
                     "short": "text", "sm": "json"}
    assert page.evaluate("[...document.querySelectorAll('[data-null]')].every(box => box.checked)")
    click(page, "#call")
    assert wait_outcome(page, "ok", "error")["result"] == {}  # every argument null
    for arg, value in {"s": "hi", "n": "3", "u": str(uuid.uuid4()), "l": '["a", 1]', "m": '{"k": 1}',
                       "dt": "2024-05-01T12:00:00Z", "sm": '{"k": "v"}'}.items():
        fill(page, arg, value)
    click(page, "[data-arg='b']")
    click(page, "#call")
    assert wait_outcome(page, "ok", "error")["result"] == {
        "s": "str", "n": "int", "b": "bool", "u": "str", "l": "list", "m": "dict", "dt": "datetime", "sm": "dict"}
    fill(page, "short", "too long")
    click(page, "#call")
    assert wait_outcome(page, "error", "ok")["error"].startswith("Invalid arguments: ")

    select(page, "sample.ver")  # 1.0.0 and 2.0.0 enabled, 3.0.0 disabled
    assert page.evaluate("[...document.querySelectorAll('#version option')].map(o => o.value)") == ["1.0.0", "2.0.0"]
    assert page.evaluate("!document.getElementById('version-row').hidden")
    click(page, "#call")
    assert wait_outcome(page, "ok", "error")["result"] == "2.0.0"
    page.evaluate("""(() => { const menu = document.getElementById('version');
                              menu.value = '1.0.0'; menu.dispatchEvent(new Event('change')); })()""")
    click(page, "#call")
    assert wait_outcome(page, "ok", "error")["result"] == "1.0.0"
    assert frames(page)[-2]["frame"]["version"] == "1.0.0"

    select(page, "sample.record")  # response_type none
    fill(page, "key", mark())
    click(page, "#call")
    assert wait_outcome(page, "ok", "error")["line"].startswith("sent")


def test_form_fields_for_every_kind_of_schema(page):
    built = page.evaluate("""(async () => {
        const {buildFields, readArgs} = await import('/static/tryit.js');
        const fields = buildFields({type: 'object', additionalProperties: false, required: ['n', 'tags'], properties: {
            color: {type: 'string', enum: ['red', 'green'], default: 'green'},
            flag: {type: 'boolean', default: true},
            maybe: {type: ['boolean', 'null']},
            n: {type: 'number'},
            tags: {type: 'array', maxItems: 3, items: {type: 'string'}},
            when: {anyOf: [{type: 'string', format: 'date-time'}, {type: 'null'}]},
            anything: {},
            name: {type: 'string', maxLength: 10, 'x-max-bytes': 10, default: 'x'},
            opts: {type: ['object', 'null'], default: null},
        }});
        const byName = Object.fromEntries(fields.map(f => [f.name, f]));
        const kinds = Object.fromEntries(fields.map(f => [f.name, [f.spec.kind, f.input.tagName.toLowerCase()]]));
        const first = readArgs(fields);
        const set = (name, value) => { byName[name].input.value = value;
            byName[name].input.dispatchEvent(new Event('input', {bubbles: true})); };
        set('n', '4.5'); set('tags', '["a", "b"]'); set('when', '2024-05-01T12:00:00Z'); set('anything', '{"k": [1]}');
        byName.color.input.value = '0';
        byName.flag.input.checked = false;
        const second = readArgs(fields);
        set('tags', '[oops');
        const third = readArgs(fields);
        return {kinds, first, second, third, none: buildFields({type: 'object'}).length};
    })()""")
    assert built["kinds"] == {
        "color": ["select", "select"], "flag": ["checkbox", "input"], "maybe": ["checkbox", "input"],
        "n": ["number", "input"], "tags": ["json", "textarea"], "when": ["text", "input"],
        "anything": ["json", "textarea"], "name": ["text", "input"], "opts": ["json", "textarea"],
    }
    # defaults prefilled, null for allow_nil without a default, empty optional-less inputs left out
    assert built["first"] == {"args": {"color": "green", "flag": True, "maybe": None, "when": None, "name": "x",
                                       "opts": None}, "errors": []}
    assert built["second"]["args"] == {"color": "red", "flag": False, "maybe": None, "n": 4.5, "tags": ["a", "b"],
                                       "when": "2024-05-01T12:00:00Z", "anything": {"k": [1]}, "name": "x",
                                       "opts": None}
    assert built["third"]["errors"][0].startswith("tags: not valid JSON")
    assert built["none"] == 0


def test_a_stream_shows_its_chunks_live_and_cancel_stops_it(page, try_stack):
    name = mark()
    select(page, "modes.ticker")
    fill(page, "mark", name)
    fill(page, "ms", "100")
    click(page, "#call")
    page.wait_for("document.querySelectorAll('#chunks li').length >= 3", what="three chunks")
    assert outcome(page)["status"] == "streaming"
    assert page.evaluate("!document.getElementById('cancel').disabled")
    click(page, "#cancel")
    result = wait_outcome(page, "cancelled", "ok", "error")
    assert result["status"] == "cancelled", result
    assert result["chunks"][:3] == [0, 1, 2]
    wait_until(lambda: try_stack.redis.get(f"{name}:closed") == b"yes", 10, "the generator closed")
    sent = [f["frame"] for f in frames(page) if f["direction"] == "out"]
    assert sent[-1]["service"] == "gateway" and sent[-1]["request_type"] == "cancel"


def test_errors_show_with_can_retry(page):
    select(page, "modes.async_sleep")  # timeout 400 ms
    fill(page, "ms", "1500")
    click(page, "#call")
    result = wait_outcome(page, "error", "ok")
    assert (result["error"], result["canRetry"]) == ("Request timed out", "true")
    request_id = frames(page)[-1]["frame"]["request_id"]
    answer = [f["frame"] for f in frames(page) if f["frame"]["request_id"] == request_id and f["direction"] == "in"]
    assert answer[0]["async"] is True and answer[0]["success"] is True  # the ack came first
    select(page, "demo.echo")
    fill(page, "text", "x")
    fill(page, "times", "-1")
    click(page, "#call")
    result = wait_outcome(page, "error", "ok")
    assert result["error"].startswith("Internal Server Error") and result["canRetry"] == "false"
    assert page.evaluate("document.querySelector('#frames li.error') !== null")


def test_a_bad_token_is_reported(browser, base_url):
    tab = browser.new_page(base_url + "/#token=not-a-token")
    try:
        tab.wait_for("!document.getElementById('notice').hidden", what="a notice")
        assert "Authentication required" in tab.evaluate("document.getElementById('notice').textContent")
        assert tab.evaluate("document.querySelectorAll('#functions li').length") == 0
        assert tab.evaluate("location.hash") == ""  # the token does not stay in the address bar
    finally:
        browser.close_page(tab)


def test_a_relay_message_between_two_pages_arrives(browser, page, base_url):
    other = open_page(browser, f"{base_url}/#token={token('bob', ())}")
    try:
        group = mark()
        for tab in (page, other):
            tab.evaluate(f"document.getElementById('group-id').value = {js(group)}")
        click(page, "[data-relay='create_group']")
        page.wait_for("document.getElementById('relay-status').textContent === 'create_group: created'",
                      what="the group created")
        click(other, "[data-relay='join_group']")
        other.wait_for("document.getElementById('relay-status').textContent === 'join_group: active'",
                       what="bob joined")
        other.wait_for("!document.getElementById('relay-text').disabled", what="the send box enabled")
        other.evaluate("document.getElementById('relay-text').value = 'hello from bob'")
        click(other, "#relay-send-button")
        received = page.wait_for(
            "[...document.querySelectorAll('#relay-messages li[data-from=\"bob\"]')].map(li => li.textContent)[0]",
            what="bob's message on the dev user's page")
        assert received == f"[{group}]bob:hello from bob"
        other.wait_for("document.querySelector('#relay-messages li[data-from=\"bob\"]') !== null",
                       what="bob's own copy")
        assert page.evaluate("document.querySelector('#frames li.relay') !== null")
    finally:
        browser.close_page(other)


def test_the_page_calls_with_messagepack_frames(browser, base_url):
    tab = open_page(browser, f"{base_url}/#token={token('carol')}&encoding=msgpack")
    try:
        assert tab.evaluate("document.getElementById('encoding').value") == "msgpack"
        select(tab, "demo.add")
        fill(tab, "a", "40")
        fill(tab, "b", "2")
        click(tab, "#call")
        assert wait_outcome(tab, "ok", "error")["result"] == 42
    finally:
        browser.close_page(tab)


# ------------------------------------------------------------------ the JS client, directly

CLIENT_SCRIPT = """(async () => {
    const {GenApiClient, GenApiError, ConnectionLost} = await import('/static/genapi.js');
    const seen = [];
    const client = new GenApiClient('/ws', {token: TOKEN, encoding: ENCODING,
                                            onFrame: (frame, direction) => seen.push([direction, frame])});
    await client.connect();
    const out = {protocol: client.protocol};
    out.sync = await client.call('demo', 'add', {a: 1, b: 2.5});
    out.hello = await client.call('demo', 'hello', {name: 'Zoë 🌍'});
    out.async = await client.call('modes', 'async_double', {n: 21});
    out.stream = [];
    for await (const chunk of client.stream('modes', 'count', {n: 4})) out.stream.push(chunk);
    out.streamAsCall = await client.call('modes', 'count_last', {n: 2});
    out.early = [];
    for await (const chunk of client.stream('modes', 'ticker', {mark: MARK, ms: 50})) {
        out.early.push(chunk);
        if (out.early.length === 3) break;
    }
    const failure = async (promise) => {
        try { await promise; return null; } catch (e) {
            return {isGenApiError: e instanceof GenApiError, error: e.error, canRetry: e.canRetry,
                    ownId: typeof e.requestId === 'string' && e.requestId.startsWith('js-')};
        }
    };
    out.unknown = await failure(client.call('demo', 'nope', {}));
    out.badArgs = await failure(client.call('demo', 'add', {a: 'one', b: 2}));
    out.timedOut = await failure(client.call('modes', 'async_sleep', {ms: 1500}));
    out.streamError = await failure((async () => {
        for await (const chunk of client.stream('modes', 'count_fail', {n: 2})) { /* drain */ }
    })());
    out.parallel = await Promise.all([1, 2, 3, 4, 5].map((n) => client.call('demo', 'add', {a: n, b: n})));
    const slow = client.call('modes', 'async_wait', {mark: MARK + '-async', ms: 5000});
    while (!seen.some(([d, f]) => d === 'in' && f.request_id === slow.requestId && f.async)) {
        await new Promise((r) => setTimeout(r, 10));
    }
    out.cancelAnswer = await client.cancel(slow.requestId);
    out.cancelled = await failure(slow);
    out.functions = (await client.functions()).map((f) => f.service + '.' + f.request_type);
    out.localTimeout = await failure(client.call('modes', 'async_wait', {mark: MARK + '-t', ms: 3000}, {timeout: 100}));
    out.none = client.notify('demo', 'add', {a: 1, b: 1});
    const ids = seen.filter(([d]) => d === 'out').map(([, f]) => f.request_id);
    out.uniqueIds = new Set(ids).size === ids.length;
    client.close();
    out.afterClose = await failure(client.call('demo', 'add', {a: 1, b: 1}));
    out.afterCloseIsLost = (await client.call('demo', 'add', {a: 1, b: 1}).catch((e) => e)) instanceof ConnectionLost;
    out.cancelledId = out.cancelAnswer.cancelled === slow.requestId;
    delete out.cancelAnswer;
    return out;
})()"""


def run_client(page: Page, encoding: str, name: str) -> dict:
    script = (CLIENT_SCRIPT.replace("TOKEN", js(token("alice"))).replace("ENCODING", js(encoding))
              .replace("MARK", js(name)))
    return page.evaluate(script, timeout=60)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_the_js_client_calls_streams_cancels_and_raises(page, try_stack, encoding):
    name = mark()
    out = run_client(page, encoding, name)
    assert out.pop("protocol") == ("genapi.msgpack" if encoding == "msgpack" else "")
    assert out["sync"] == 3.5
    assert out["hello"] == {"greeting": "Hello, Zoë 🌍!"}
    assert out["async"] == 42
    assert out["stream"] == [0, 1, 2, 3]
    assert out["streamAsCall"] == [0, 1, "last"]
    assert out["early"] == [0, 1, 2]
    wait_until(lambda: try_stack.redis.get(f"{name}:closed") == b"yes", 10, "breaking out stopped the producer")
    assert out["unknown"] == {"isGenApiError": True, "error": "unsupported function: nope version latest",
                              "canRetry": False, "ownId": True}
    assert out["badArgs"]["error"].startswith("Invalid arguments: ") and out["badArgs"]["canRetry"] is False
    assert out["timedOut"] == {"isGenApiError": True, "error": "Request timed out", "canRetry": True, "ownId": True}
    assert out["streamError"]["error"].startswith("Internal Server Error")
    assert out["parallel"] == [2, 4, 6, 8, 10]
    assert out["cancelled"]["error"] == "Request cancelled" and out["cancelledId"]
    assert DEMO_FUNCTIONS <= set(out["functions"])
    assert out["localTimeout"]["error"] == "Request timed out" and out["localTimeout"]["canRetry"] is True
    assert out["none"].startswith("js-") and out["uniqueIds"]
    assert out["afterClose"]["error"] == "The client is closed" and out["afterCloseIsLost"]


def test_json_and_msgpack_clients_get_the_same_answers(page):
    answers = page.evaluate(f"""(async () => {{
        const {{GenApiClient}} = await import('/static/genapi.js');
        const calls = [['demo', 'add', {{a: 2 ** 40, b: -7.25}}], ['demo', 'echo', {{text: 'ü\\u0000"', times: 3}}],
                       ['demo', 'whoami', {{}}], ['demo', 'hello', {{}}], ['demo', 'add', {{a: 1}}]];
        const answersOf = async (encoding) => {{
            const client = new GenApiClient('/ws', {{token: {js(token("alice"))}, encoding}});
            const out = [];
            for (const [service, type, args] of calls) {{
                const answer = client.call(service, type, args);
                out.push(await answer.catch((e) => ({{error: e.error, canRetry: e.canRetry}})));
            }}
            client.close();
            return out.map((answer) => {{ if (answer && answer.request_id) answer.request_id = 'x'; return answer; }});
        }};
        return [await answersOf('json'), await answersOf('msgpack')];
    }})()""")
    assert answers[0] == answers[1]
    assert answers[0][0] == 2 ** 40 - 7.25
    assert answers[0][4]["error"].startswith("Invalid arguments")


def test_relay_through_the_js_client(page):
    group = mark()
    out = page.evaluate(f"""(async () => {{
        const {{GenApiClient}} = await import('/static/genapi.js');
        const alice = new GenApiClient('/ws', {{token: {js(token("alice"))}}});
        const bob = new GenApiClient('/ws', {{token: {js(token("bob", ()))}, encoding: 'msgpack'}});
        const got = {{alice: [], bob: []}};
        const stop = alice.onRelay((message) => got.alice.push(message));
        bob.onRelay((message) => got.bob.push(message));
        const created = await alice.relay('create_group', {{group_id: {js(group)}, group_type: 'public'}});
        const joined = await bob.relay('join_group', {{group_id: {js(group)}}});
        const sent = await bob.relay('send', {{group_id: {js(group)}, message: {{text: 'hi', n: 1}}}});
        const arrived = async (list, n) => {{ while (list.length < n) await new Promise((r) => setTimeout(r, 10)); }};
        await arrived(got.alice, 1);
        await arrived(got.bob, 1);
        stop();
        await alice.relay('send', {{group_id: {js(group)}, message: 'after unsubscribing'}});
        await arrived(got.bob, 2);
        const groups = [...alice.groups];
        alice.close(); bob.close();
        return {{created, joined, sent, got, groups}};
    }})()""")
    assert out["created"]["status"] == "created" and out["joined"]["status"] == "active"
    assert out["sent"] == {"status": "relayed", "recipients_count": 2}
    message = out["got"]["alice"][0]
    assert (message["group_id"], message["from_user_id"], message["message"]) == (group, "bob", {"text": "hi", "n": 1})
    assert len(out["got"]["alice"]) == 1  # unsubscribed before alice's own message
    assert [m["message"] for m in out["got"]["bob"]] == [{"text": "hi", "n": 1}, "after unsubscribing"]
    assert out["groups"] == [group]


def test_the_js_client_reconnects_and_rejoins_its_groups(page, try_stack):
    port = free_port()
    gateway = start_gateway_on(try_stack, port)
    group = mark()
    page.evaluate(f"""(async () => {{
        const {{GenApiClient}} = await import('/static/genapi.js');
        window.states = [];
        window.rc = new GenApiClient('ws://127.0.0.1:{port}/ws', {{token: {js(token("alice"))},
                                                                   onState: (s) => window.states.push(s)}});
        await window.rc.connect();
        await window.rc.relay('create_group', {{group_id: {js(group)}, group_type: 'public'}});
    }})()""")
    try_stack.stop(gateway.process)
    page.wait_for("window.states.includes('reconnecting')", what="the drop noticed")
    assert page.evaluate("window.rc.state") == "reconnecting"
    gateway = start_gateway_on(try_stack, port)
    page.wait_for("window.rc.state === 'open'", timeout=30, what="reconnected")
    assert page.evaluate("window.rc.call('demo', 'add', {a: 20, b: 22})", timeout=20) == 42
    info = page.evaluate(f"""(async () => {{
        for (let i = 0; i < 200; i++) {{
            const info = await window.rc.relay('group_info', {{group_id: {js(group)}}});
            if (info.members.alice && info.members.alice.connected) return info;
            await new Promise((r) => setTimeout(r, 25));
        }}
        return null;
    }})()""")
    assert info is not None and info["members"]["alice"]["status"] == "active"  # re-attached by the rejoin

    # a gateway that dies without a word: the call in flight fails with ConnectionLost
    name = mark()
    page.evaluate(f"""window.inflight = window.rc.call('modes', 'async_wait', {{mark: {js(name)}, ms: 3000}})
                      .then(() => 'answered', (e) => [e.name, e.error, e.canRetry]); null""")
    wait_until(lambda: try_stack.redis.get(f"{name}:started") is not None, 10, "the call running on the worker")
    os.killpg(gateway.process.pid, signal.SIGKILL)
    gateway.process.wait(10)
    assert page.evaluate("window.inflight", timeout=20) == ["ConnectionLost", "Connection lost", True]
    page.wait_for("window.rc.state === 'reconnecting'", what="reconnecting again")
    page.evaluate("window.rc.close()")
    assert page.evaluate("window.states")[-1] == "closed"


def start_gateway_on(stack: Stack, port: int) -> GatewayProcess:
    argv = [sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    process = stack._spawn("gateway", argv, stack.env())
    gateway = GatewayProcess(process, port)
    wait_until(gateway.healthy, 30, "gateway", process)
    wait_until(lambda: any("demo" in task for task in gateway.status()["tasks"]), 10, "gateway sees the worker",
               process)
    return gateway


# ------------------------------------------------------------------ MessagePack, byte for byte

def test_the_js_messagepack_codec_matches_python(page):
    values = [None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
              -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1,
              0.5, -1.25, 1e300, "", "a" * 31, "b" * 32, "c" * 255, "d" * 256, "e" * 70000, "zoë 🌍",
              [], list(range(15)), list(range(16)), list(range(70000)), {}, {str(i): i for i in range(15)},
              {str(i): i for i in range(16)}, {"nested": [{"a": [1, {"b": None}]}]}]
    encoded = page.evaluate(f"""(async () => {{
        const {{msgpack}} = await import('/static/genapi.js');
        const values = {js(values)};
        return values.map((v) => btoa(Array.from(msgpack.encode(v), (b) => String.fromCharCode(b)).join('')));
    }})()""", timeout=60)
    for value, data in zip(values, encoded, strict=True):
        raw = base64.b64decode(data)
        assert msgpack.unpackb(raw, raw=False, strict_map_key=False) == value, value
        assert raw == msgpack.packb(value, use_bin_type=True), value  # the smallest form, as Python's
    packed = [base64.b64encode(msgpack.packb(v, use_bin_type=True)).decode() for v in values]
    packed.append(base64.b64encode(msgpack.packb(1.5, use_single_float=True)).decode())
    packed.append(base64.b64encode(msgpack.packb(b"\x00\x01", use_bin_type=True)).decode())
    decoded = page.evaluate(f"""(async () => {{
        const {{msgpack}} = await import('/static/genapi.js');
        return {js(packed)}.map((b64) => {{
            const value = msgpack.decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
            return value instanceof Uint8Array ? {{bytes: Array.from(value)}} : value;
        }});
    }})()""", timeout=60)
    assert decoded[:-2] == values
    assert decoded[-2:] == [1.5, {"bytes": [0, 1]}]
    errors = page.evaluate("""(async () => {
        const {msgpack} = await import('/static/genapi.js');
        const fails = (bytes) => {
            try { msgpack.decode(new Uint8Array(bytes)); return null; } catch (e) { return e.message; }
        };
        return [fails([0x92, 0x01]), fails([0x01, 0x02]), fails([0xc1])];
    })()""")
    assert errors == ["MessagePack: data ends too early", "MessagePack: extra bytes after the value",
                      "MessagePack: unknown type byte 0xc1"]
