"""The worker's Celery configuration: the defaults docs/performance.md explains."""

from workers.celery_app import create_celery_app
from workers.settings import Settings


def _conf():
    return create_celery_app(Settings(redis_url="redis://127.0.0.1:1/0")).conf


def test_no_unacked_bookkeeping_in_redis():
    # two MULTI/EXEC round trips per task otherwise; the gateway ends a dead worker's calls itself
    assert _conf().broker_transport_options["ack_emulation"] is False


def test_json_only_and_no_task_events_unless_asked():
    conf = _conf()
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.worker_send_task_events is False and conf.task_ignore_result is True
