"""`voice-agent bench tts`: the real benchmark on synthetic-tiny, and its CLI's JSON."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from agent.bench import tts


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tts.add_arguments(parser)
    return parser.parse_args(list(argv))


async def test_two_concurrent_replies(no_dotenv: Path) -> None:
    result = await tts.run(parse("--streams", "2", "--device", "cpu"))
    assert (result["model"], result["device"], result["streams"]) == ("synthetic-tiny", "cpu", 2), result
    first, cancel = result["first_audio_ms"], result["cancel_stop_ms"]
    assert 0 < first["p50"] <= first["p95"], result
    assert 0 <= cancel["p50"] <= cancel["p95"], result
    # both replies' sentences, at synthetic-tiny's fixed speech-token rate per character
    assert result["audio_seconds"] > 2 * 2.0, result
    assert result["rtf"] > 0, result
    assert result["gpu_mem_mb"] is None, result
    assert "first audio" in tts.format_table(result)


def test_cli_prints_one_json_object(no_dotenv: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_AGENT_")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "voice-agent"), "--log-level", "ERROR", "bench", "tts", "--json"]
        + ["--streams", "1", "--device", "cpu"],
        env=clean | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)  # stdout holds the result alone
    assert result["benchmark"] == "tts" and result["streams"] == 1
    assert {"first_audio_ms", "rtf", "cancel_stop_ms", "gpu_mem_mb"} <= result.keys()
