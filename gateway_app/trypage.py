"""The try-it page: ``/`` in a browser lists the functions the caller may call, with a form
per function, and calls them over the WebSocket (``GENAPI_TRY_PAGE``; ``genapi dev`` turns it on).

Also serves the browser client, ``/static/genapi.js``, which any web app may import. Only
the named files are served, each by a route of its own: in an app that has its own
``/static/<path>`` route, Werkzeug prefers these fixed paths, and nothing else of the app's
is shadowed.

``GET /try/config`` tells the page which token to sign in with by default: the one in
``GENAPI_TRY_PAGE_TOKEN`` (``genapi dev`` puts the dev user's there), and only to a client on
the loopback interface. The page never mints tokens.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from flask import Blueprint, jsonify, request, send_from_directory

from workers.settings import Settings

STATIC = Path(__file__).with_name("static")

#: the files served under ``/static/``, with their media types (a module script needs a JavaScript one)
FILES = {"genapi.js": "text/javascript", "tryit.js": "text/javascript", "tryit.css": "text/css"}

#: the page loads only what it is served from here, and talks only to its own gateway
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def try_page_blueprint(settings: Settings) -> Blueprint:
    """The routes of the try-it page: ``/``, ``/static/<file>`` and ``/try/config``."""
    blueprint = Blueprint("genapi_try", __name__)

    @blueprint.get("/")
    def index():
        reply = send_from_directory(STATIC, "index.html", mimetype="text/html", max_age=0)
        reply.headers["Content-Security-Policy"] = PAGE_POLICY
        reply.headers["X-Content-Type-Options"] = "nosniff"
        reply.headers["Referrer-Policy"] = "no-referrer"  # a #token= fragment never leaks, but be sure
        return reply

    def static_file(name: str):
        reply = send_from_directory(STATIC, name, mimetype=FILES[name], max_age=0)
        reply.headers["X-Content-Type-Options"] = "nosniff"
        if name == "genapi.js":
            reply.headers["Access-Control-Allow-Origin"] = "*"  # a module script of any origin may import it
        return reply

    for name in FILES:
        blueprint.add_url_rule(f"/static/{name}", f"static_{name.replace('.', '_')}", static_file,
                               defaults={"name": name})

    @blueprint.get("/try/config")
    def config():
        token = settings.try_page_token if _is_loopback(request.remote_addr) else None
        reply = jsonify({"token": token, "ws_path": "/ws"})
        reply.headers["Cache-Control"] = "no-store"
        return reply

    return blueprint
