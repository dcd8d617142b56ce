"""``create_app()``: a Flask app that is just the gateway."""

from __future__ import annotations

import logging

from flask import Flask

from workers import logs
from workers.settings import Settings

from .extension import Gateway


def create_app(settings: Settings | None = None) -> Flask:
    """The gateway as a standalone Flask app (what ``genapi gateway`` serves)."""
    # no implicit /static route: the try-it page's blueprint serves its files only when it is on
    app = Flask("gateway_app", static_folder=None)
    settings = app.config["GENAPI_SETTINGS"] = settings or Settings.from_env()
    logs.configure(settings.log_format, getattr(logging, settings.log_level.upper()))
    Gateway(app)
    return app
