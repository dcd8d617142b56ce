"""docs/telemetry.md and the Grafana dashboard stay in step with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway_app.metrics import Metrics
from workers.signals import EVENTS, NOT_EMITTED

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_event_is_documented_with_its_fields():
    text = (DOCS / "telemetry.md").read_text()
    for name, fields in EVENTS.items():
        assert f"`{name}`" in text, name
        for field in fields:
            assert field in text, (name, field)
    for name in NOT_EMITTED:
        assert "never emitted" in text.split(f"`{name}`", 1)[1].split("\n", 1)[0], name


def metric_names() -> set[str]:
    metrics = [metric for metric in vars(Metrics(registry=None)).values() if hasattr(metric, "_name")]
    names = {metric._name + ("_total" if metric._type == "counter" else "") for metric in metrics}
    return names | {"genapi_registered_functions", "genapi_live_workers", "genapi_breaker_state"}


def test_the_dashboard_queries_only_metrics_that_exist():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    known = metric_names()
    text = (DOCS / "telemetry.md").read_text()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"genapi_[a-z_]+", target["expr"]))
            base = {name if name in known else re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
            assert base <= known, (panel["title"], base - known)
    for name in known:
        assert f"`{name}`" in text, name
