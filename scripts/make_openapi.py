"""Write docs/openapi.json, the hub API's OpenAPI document, from hub/api/app.py.

Run ``python scripts/make_openapi.py`` after changing the API; tests/test_api.py fails
while the published document differs from what the code serves.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "openapi.json"
sys.path.insert(0, str(ROOT))


def openapi_document() -> dict[str, Any]:
    """The document the API serves at /openapi.json (independent of config and data)."""
    from gridcall.config import SAMPLE_DISTRICT, load_config
    from gridcall.hub.api.app import create_app
    from gridcall.hub.api.tokens import TokenFile
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger
    from gridcall.hub.store import Store

    async def build() -> dict[str, Any]:
        async with Store(":memory:") as store:
            desk = Desk(load_config(SAMPLE_DISTRICT), Ledger(store))
            app = create_app(desk, TokenFile(ROOT / "no-tokens.json"), clock=time.time_ns)
            return app.openapi()
    return asyncio.run(build())


def main() -> None:
    text = json.dumps(openapi_document(), indent=1, ensure_ascii=False, sort_keys=True)
    OUT.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
