"""The Flask extension wires routes and settings without touching Redis until it serves."""

from __future__ import annotations

from flask import Flask

from gateway_app import Gateway, create_app
from gateway_app.dispatch import CeleryDispatcher, RedisQueueDispatcher, for_broker
from workers.settings import Settings


def _rules(app: Flask) -> set[str]:
    return {rule.rule for rule in app.url_map.iter_rules()}


def test_init_app_adds_the_routes_to_an_existing_app():
    app = Flask("host_app")
    app.config["GENAPI_SETTINGS"] = Settings(max_payload_bytes=1000)
    gateway = Gateway()
    gateway.init_app(app)
    assert {"/ws", "/healthz"} <= _rules(app) and "/ws/public" not in _rules(app)
    assert app.extensions["genapi"] is gateway
    assert gateway.settings.max_payload_bytes == 1000
    # the transport accepts frames above the gateway's limit, so the client gets an error frame
    assert app.config["SOCK_SERVER_OPTIONS"]["max_message_size"] > 1000


def test_public_endpoint_only_when_enabled():
    assert "/ws/public" in _rules(create_app(Settings(public_ws=True)))


def test_settings_given_to_the_constructor():
    app = Flask("host_app")
    gateway = Gateway(app, settings=Settings(detail_error=True))
    assert gateway.settings.detail_error is True


def test_compression_offer_is_dropped_on_websocket_routes_only():
    app = create_app(Settings())
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Extensions": "permessage-deflate"}
    plain = {"Sec-WebSocket-Extensions": "permessage-deflate"}
    for path, headers, expected in (("/ws", upgrade, None), ("/healthz", plain, "permessage-deflate")):
        with app.test_request_context(path, headers=headers) as context:
            app.preprocess_request()
            assert context.request.environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS") == expected


def test_redis_brokers_get_the_direct_dispatcher():
    assert isinstance(for_broker("redis://127.0.0.1:1/0", lambda: None), RedisQueueDispatcher)


def test_other_brokers_go_through_celery():
    from workers.celery_app import create_celery_app

    dispatcher = for_broker("amqp://guest@127.0.0.1:1//",
                            lambda: create_celery_app(Settings(broker_url="amqp://guest@127.0.0.1:1//")))
    assert isinstance(dispatcher, CeleryDispatcher)
    assert dispatcher.app.conf.result_backend_thread_safe is True
