"""``create_app()``: a Flask app that is just the gateway."""

from __future__ import annotations

from flask import Flask

from workers.settings import Settings

from .extension import Gateway


def create_app(settings: Settings | None = None) -> Flask:
    """The gateway as a standalone Flask app (what ``genapi gateway`` serves)."""
    app = Flask("gateway_app")
    app.config["GENAPI_SETTINGS"] = settings or Settings.from_env()
    Gateway(app)
    return app
