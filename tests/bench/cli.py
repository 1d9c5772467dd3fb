"""Run `voice-agent bench ... --json` as the real console script and parse its one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def bench_json(benchmark: str, *args: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_AGENT_")}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "voice-agent"),
            "--log-level",
            "ERROR",
            "bench",
            benchmark,
            "--json",
        ]
        + list(args),
        env=clean | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # stdout holds the result alone
