"""Remote functions as local calls: ``client.services.<service>.<request_type>(**args)``.

The proxies are built from the catalogue (``gateway/functions``, fetched on first use and
cached; ``refresh_catalogue()`` fetches it again, and a name the cache does not know makes it
fetch once more before giving up). Arguments are checked against the function's
``args_schema`` before anything is sent. The response type decides what a call returns: the
result (sync, async), a stream iterator (stream), or ``None`` at once (none).

Arguments are keywords. ``_version`` and ``_timeout`` are the proxy's own options, named so
they cannot clash with argument names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .sync import Client


class Catalogue:
    """The functions a caller may call, by service and request type (the list of
    ``gateway/functions``, one entry per enabled version)."""

    def __init__(self, entries: Iterable[dict]) -> None:
        self.entries = list(entries)
        self._index: dict[str, dict[str, list[dict]]] = {}
        for entry in self.entries:
            self._index.setdefault(entry["service"], {}).setdefault(entry["request_type"], []).append(entry)

    def services(self) -> list[str]:
        """The service names, sorted."""
        return sorted(self._index)

    def functions(self, service: str) -> list[str]:
        """The request types of ``service``, sorted."""
        return sorted(self._index.get(service, {}))

    def entry(self, service: str, request_type: str, version: str | None = None) -> dict | None:
        """The entry a call runs: the given version, or the one marked ``latest``."""
        entries = self._index.get(service, {}).get(request_type, [])
        for entry in entries:
            if (entry.get("version") == version) if version is not None else entry.get("latest"):
                return entry
        return None


def _no_service(service: str, catalogue: Catalogue) -> AttributeError:
    known = ", ".join(catalogue.services()) or "none"
    return AttributeError(f"no service {service!r} in the catalogue of functions you may call "
                          f"(services: {known})")


def _no_function(service: str, request_type: str, catalogue: Catalogue) -> AttributeError:
    known = ", ".join(catalogue.functions(service)) or "none"
    return AttributeError(f"service {service!r} has no function {request_type!r} you may call "
                          f"(functions: {known})")


def _private(name: str) -> bool:
    return name.startswith("_")  # dunders and tools' probes (_repr_html_...): never a remote name


# ------------------------------------------------------------------ blocking client


class Services:
    """``client.services``: one attribute per service of the catalogue."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, service: str) -> ServiceProxy:
        if _private(service):
            raise AttributeError(service)
        catalogue = self._client._catalogue_where(lambda c: service in c.services())
        if service not in catalogue.services():
            raise _no_service(service, catalogue)
        return ServiceProxy(self._client, service)

    def __dir__(self) -> list[str]:
        return self._client._catalogue_where(lambda c: True).services()


class ServiceProxy:
    """One service: one attribute per function."""

    def __init__(self, client: Client, service: str) -> None:
        self._client = client
        self._service = service

    def __getattr__(self, request_type: str) -> FunctionProxy:
        if _private(request_type):
            raise AttributeError(request_type)
        service = self._service
        catalogue = self._client._catalogue_where(lambda c: request_type in c.functions(service))
        if request_type not in catalogue.functions(service):
            raise _no_function(service, request_type, catalogue)
        return FunctionProxy(self._client, service, request_type)

    def __dir__(self) -> list[str]:
        return self._client._catalogue_where(lambda c: True).functions(self._service)

    def __repr__(self) -> str:
        return f"<service {self._service}>"


class FunctionProxy:
    """One remote function; calling it calls the function."""

    def __init__(self, client: Client, service: str, request_type: str) -> None:
        self._client = client
        self.service = service
        self.request_type = request_type

    @property
    def entry(self) -> dict | None:
        """The catalogue entry of the latest version."""
        return self._client._catalogue_where(lambda c: True).entry(self.service, self.request_type)

    def __call__(self, *positional: Any, _version: str | None = None, _timeout: float | None = None,
                 **args: Any) -> Any:
        if positional:
            raise TypeError(f"{self.service}.{self.request_type}() takes arguments by name only")
        client = self._client
        entry = client._catalogue_where(lambda c: True).entry(self.service, self.request_type, _version)
        sent = client._aio.checked_args(entry, args)
        mode = (entry or {}).get("response_type")
        if mode == "stream":
            return client.stream(self.service, self.request_type, sent, _version, _timeout)
        if mode == "none":
            client.notify(self.service, self.request_type, sent, _version)
            return None
        return client.call(self.service, self.request_type, sent, _version, _timeout)

    def __repr__(self) -> str:
        return f"<function {self.service}.{self.request_type}>"


# ------------------------------------------------------------------ asyncio client


class AsyncServices:
    """``client.services`` of :class:`AsyncClient`: ``await client.services.svc.fn(**args)``.

    Names are checked when the catalogue is cached already, else when the call is awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __getattr__(self, service: str) -> AsyncServiceProxy:
        if _private(service):
            raise AttributeError(service)
        catalogue = self._client.cached_catalogue
        if catalogue is not None and service not in catalogue.services():
            raise _no_service(service, catalogue)
        return AsyncServiceProxy(self._client, service)


class AsyncServiceProxy:
    """One service of :class:`AsyncServices`."""

    def __init__(self, client: AsyncClient, service: str) -> None:
        self._client = client
        self._service = service

    def __getattr__(self, request_type: str) -> AsyncFunctionProxy:
        if _private(request_type):
            raise AttributeError(request_type)
        catalogue = self._client.cached_catalogue
        if catalogue is not None and self._service in catalogue.services() \
                and request_type not in catalogue.functions(self._service):
            raise _no_function(self._service, request_type, catalogue)
        return AsyncFunctionProxy(self._client, self._service, request_type)


class AsyncFunctionProxy:
    """One remote function of :class:`AsyncServices`; awaiting a call gives the result, or a
    started :class:`AsyncStream` for a stream function."""

    def __init__(self, client: AsyncClient, service: str, request_type: str) -> None:
        self._client = client
        self.service = service
        self.request_type = request_type

    async def _entry(self, version: str | None) -> dict | None:
        client, service, request_type = self._client, self.service, self.request_type
        catalogue = await client.catalogue()
        if request_type not in catalogue.functions(service):
            catalogue = await client.refresh_catalogue()
        if service not in catalogue.services():
            raise _no_service(service, catalogue)
        if request_type not in catalogue.functions(service):
            raise _no_function(service, request_type, catalogue)
        return catalogue.entry(service, request_type, version)

    async def __call__(self, *positional: Any, _version: str | None = None, _timeout: float | None = None,
                       **args: Any) -> Any:
        if positional:
            raise TypeError(f"{self.service}.{self.request_type}() takes arguments by name only")
        client = self._client
        entry = await self._entry(_version)
        sent = client.checked_args(entry, args)
        mode = (entry or {}).get("response_type")
        if mode == "stream":
            return await client.stream(self.service, self.request_type, sent, _version, _timeout).start()
        if mode == "none":
            await client.notify(self.service, self.request_type, sent, _version)
            return None
        return await client.call(self.service, self.request_type, sent, _version, _timeout)

    def __repr__(self) -> str:
        return f"<function {self.service}.{self.request_type}>"
