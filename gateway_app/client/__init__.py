"""The Python client of the gateway: call functions by name over one WebSocket.

```python
from gateway_app.client import Client

with Client("ws://127.0.0.1:8000/ws", token=TOKEN) as client:
    client.call("demo", "add", {"a": 2, "b": 3})          # 5
    for chunk in client.stream("feeds", "count", {"n": 3}):
        print(chunk)
    client.services.demo.hello(name="Ada")                # proxies built from the catalogue
```

:class:`AsyncClient` is the same for asyncio. Importing this package loads neither Flask nor
Celery: only ``websockets`` and ``msgpack``. ``docs/clients.md`` is the guide.
"""

from .aio import AsyncClient
from .errors import (
    AuthenticationRequired,
    BadRequest,
    Cancelled,
    ClientTooSlow,
    ConnectFailed,
    ConnectionLost,
    GenApiCallError,
    HookRejected,
    InternalServerError,
    InvalidArguments,
    PermissionDenied,
    RateLimited,
    RelayError,
    TimedOut,
    Unavailable,
    UnsupportedFunction,
)
from .proxies import Catalogue
from .streams import AsyncStream
from .sync import Client, Stream
from .wire import RelayMessage

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "AuthenticationRequired",
    "BadRequest",
    "Cancelled",
    "Catalogue",
    "Client",
    "ClientTooSlow",
    "ConnectFailed",
    "ConnectionLost",
    "GenApiCallError",
    "HookRejected",
    "InternalServerError",
    "InvalidArguments",
    "PermissionDenied",
    "RateLimited",
    "RelayError",
    "RelayMessage",
    "Stream",
    "TimedOut",
    "Unavailable",
    "UnsupportedFunction",
]
