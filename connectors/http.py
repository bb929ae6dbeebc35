"""One httpx client factory for every connector: explicit timeouts and an honest User-Agent."""

from __future__ import annotations

import httpx

USER_AGENT = "openig-broker/0.1 (+https://www.openig.org/)"


def make_client(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=10.0),
        transport=transport,
        follow_redirects=False,
    )
