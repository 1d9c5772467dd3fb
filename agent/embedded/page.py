"""The page's HTML, with livekit-client pinned by Subresource Integrity in room mode.

The page imports livekit-client by the bare name "livekit-client"; an import map resolves it to
`VOICE_AGENT_LIVEKIT_CLIENT_URL` and pins its sha384 (`VOICE_AGENT_LIVEKIT_CLIENT_INTEGRITY`), and a
`<link rel="modulepreload" integrity=... crossorigin="anonymous">` fetches it with the same check, so a CDN
that serves other bytes is refused by the browser. With `VOICE_AGENT_LIVEKIT_CLIENT_FILE` this server serves
that file itself (its hash computed at startup) and nothing is loaded from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

from ..settings import Settings

LIVEKIT_CLIENT_ROUTE = "/vendor/livekit-client.esm.mjs"
PLACEHOLDER = "<!-- livekit-client -->"


def sri_sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def livekit_client(settings: Settings) -> tuple[str, str]:
    """(URL, integrity) of the livekit-client module the page loads."""
    if settings.livekit_client_file is not None:
        return LIVEKIT_CLIENT_ROUTE, sri_sha384(settings.livekit_client_file.read_bytes())
    return settings.livekit_client_url, settings.livekit_client_integrity


def client_tags(url: str, integrity: str) -> str:
    import_map = {"imports": {"livekit-client": url}, "integrity": {url: integrity}}
    # "</" cannot end the script element early: JSON allows "\/" for "/"
    mapping = json.dumps(import_map).replace("</", "<\\/")
    return (
        f'<script type="importmap">{mapping}</script>\n'
        f'  <link rel="modulepreload" href="{html.escape(url)}" integrity="{html.escape(integrity)}" '
        'crossorigin="anonymous">'
    )


def render_index(path: Path, room_settings: Settings | None) -> str:
    """index.html with the livekit-client tags in place of PLACEHOLDER (none without room mode)."""
    page = path.read_text(encoding="utf-8")
    tags = client_tags(*livekit_client(room_settings)) if room_settings is not None else ""
    return page.replace(PLACEHOLDER, tags)
