"""The one place that resolves how cacher reaches an S3 endpoint, for every request path.

HEADs and ranged GETs (`rest`, `ranges`), uploads, lists and deletes (s3fs, `client`) all take
their settings from one `Transport`: endpoint, region, credentials (with session token), CA
bundle, proxy, timeouts and attempts. A user's environment never works for one request and
fails for the next.

- **CA bundle**: ``ca_bundle`` (flag, ``CACHER_CA_BUNDLE``, config), else ``AWS_CA_BUNDLE``
  (what botocore reads), else ``SSL_CERT_FILE`` (what Python's ``ssl`` reads), else the system
  store. The same file verifies both clients.
- **Proxy**: ``HTTPS_PROXY``/``HTTP_PROXY`` for the endpoint's scheme (either case) unless
  ``NO_PROXY`` names its host, resolved with the standard library functions botocore uses
  (``urllib.request.getproxies_environment``/``proxy_bypass_environment``), then given to
  s3fs explicitly so both clients go the same way.
- **Timeouts**: ``metadata_timeout`` bounds a HEAD, LIST or DELETE in all; bodies have
  ``connect_timeout``, ``read_timeout`` (silence) and ``request_timeout`` (in all).
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cacher.config import Settings, origin
from cacher.errors import ConfigError
from cacher.stores.s3.credentials import Credentials
from cacher.stores.s3.credentials import resolve as resolve_credentials

if TYPE_CHECKING:  # imported where a TLS context is made: a plain-HTTP endpoint needs no ssl
    import ssl


@dataclass(frozen=True)
class Proxy:
    """A forward proxy for the endpoint: where to connect, and its credentials (if any)."""

    url: str
    host: str
    port: int
    authorization: str | None = None  # the Proxy-Authorization header value

    def __repr__(self) -> str:  # user:password@ never shows
        return f"Proxy({self.host}:{self.port})"


@dataclass(frozen=True, repr=False)
class Transport:
    """Everything a request to the store needs, resolved once per command."""

    endpoint: str
    region: str
    credentials: Credentials
    ca_bundle: str | None
    ca_source: str
    proxy: Proxy | None
    connect_timeout: float
    read_timeout: float
    metadata_timeout: float
    request_timeout: float
    attempts: int
    _ssl: list[ssl.SSLContext] = field(default_factory=list, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def __repr__(self) -> str:  # credentials never show
        return f"Transport({self.endpoint}, proxy={self.proxy!r})"

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).scheme

    @property
    def netloc(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).netloc

    @property
    def host_header(self) -> str:
        """The ``Host`` header as botocore signs it: without the scheme's default port."""
        url = urllib.parse.urlsplit(self.endpoint)
        host = url.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        default = 443 if url.scheme == "https" else 80
        return host if url.port in (None, default) else f"{host}:{url.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for the endpoint (made once: loading a bundle costs milliseconds)."""
        import ssl

        with self._lock:
            if not self._ssl:
                if self.ca_bundle:
                    self._ssl.append(ssl.create_default_context(cafile=self.ca_bundle))
                else:
                    self._ssl.append(ssl.create_default_context())
            return self._ssl[0]

    def verify(self) -> str | bool:
        """What botocore's ``verify`` gets: the same bundle ``http.client`` verifies with."""
        if self.ca_bundle:
            return self.ca_bundle
        import ssl

        system = ssl.get_default_verify_paths().cafile
        return system if system and os.path.isfile(system) else True

    def botocore_proxies(self) -> dict[str, str]:
        """The proxies for botocore's config: the resolved one for the endpoint's scheme, or
        none at all (an empty dict, so botocore does not read the environment again)."""
        return {self.scheme: self.proxy.url} if self.proxy else {}


def resolve(settings: Settings, environ: Mapping[str, str]) -> Transport:
    """The transport for the S3 store of ``settings``; credentials included."""
    region = settings.region or "us-east-1"
    endpoint = (settings.endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
    ca_bundle, ca_source = _ca_bundle(settings, environ)
    return Transport(
        endpoint=endpoint,
        region=region,
        credentials=resolve_credentials(settings, environ),
        ca_bundle=ca_bundle,
        ca_source=ca_source,
        proxy=proxy_for(endpoint, environ),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        metadata_timeout=settings.metadata_timeout,
        request_timeout=settings.request_timeout,
        attempts=settings.max_attempts,
    )


def _ca_bundle(settings: Settings, environ: Mapping[str, str]) -> tuple[str | None, str]:
    if settings.ca_bundle:
        path, where = str(settings.ca_bundle), origin(settings, "ca_bundle")
    elif environ.get("AWS_CA_BUNDLE"):
        path, where = environ["AWS_CA_BUNDLE"], "AWS_CA_BUNDLE"
    elif environ.get("SSL_CERT_FILE"):
        path, where = environ["SSL_CERT_FILE"], "SSL_CERT_FILE"
    else:
        return None, "the system store"
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise ConfigError(f"the CA bundle {path} ({where}) does not exist or is not a file")
    return path, where


def proxy_for(url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy botocore would use for ``url`` with this environment, or None.

    Like botocore (`botocore.utils.get_environ_proxies`): ``NO_PROXY`` first (host names,
    domain suffixes, ``*``), then the proxy of the URL's scheme; lower case wins over upper.
    """
    proxies = _environ_proxies(environ)
    if not proxies:
        return None  # the common case costs no import
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - not in typeshed
    if bypass(parts.netloc, proxies):
        return None
    chosen = proxies.get(parts.scheme)
    if not chosen:
        return None
    if "://" not in chosen:  # botocore's _fix_proxy_url
        chosen = f"http://{chosen}"
    proxy = urllib.parse.urlsplit(chosen)
    if proxy.scheme != "http":
        raise ConfigError(f"the proxy for {parts.scheme} must be an http:// URL (got {proxy.scheme}://)")
    if not proxy.hostname:
        raise ConfigError(f"the {parts.scheme} proxy URL has no host")
    auth = None
    if proxy.username is not None:
        import base64

        pair = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(chosen, proxy.hostname, proxy.port or 80, auth)


def _environ_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """``urllib.request.getproxies_environment`` over ``environ`` instead of ``os.environ``:
    ``<scheme>_proxy`` in any case, the lower-case name winning (an empty one unsets)."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        if value and name[-6:].lower() == "_proxy":
            proxies[name[:-6].lower()] = value
    if "REQUEST_METHOD" in environ:  # CGI: HTTP_PROXY is a request header (httpoxy)
        proxies.pop("http", None)
    for name, value in environ.items():
        if name[-6:] == "_proxy":
            if value:
                proxies[name[:-6].lower()] = value
            else:
                proxies.pop(name[:-6].lower(), None)
    return proxies
