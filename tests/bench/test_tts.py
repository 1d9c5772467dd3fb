"""`voice-agent bench tts`: the real benchmark on synthetic-tiny, and its CLI's JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.bench import tts
from tests.bench.cli import bench_json


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
    assert 0 <= result["stall_ms"]["p50"] <= result["stall_ms"]["p95"], result
    # both replies' sentences, at synthetic-tiny's fixed speech-token rate per character
    assert result["audio_seconds"] > 2 * 2.0, result
    assert result["rtf"] > 0, result
    assert result["gpu_mem_mb"] is None, result
    assert result["max_batch"] == 2, result  # the two replies' token steps ran as one batch
    assert 1 <= result["max_flow_batch"] <= 2, result
    assert "first audio" in tts.format_table(result)


def test_cli_prints_one_json_object(no_dotenv: Path) -> None:
    result = bench_json("tts", "--streams", "1", "--device", "cpu")
    assert result["benchmark"] == "tts" and result["streams"] == 1
    assert {"first_audio_ms", "stall_ms", "rtf", "cancel_stop_ms", "gpu_mem_mb"} <= result.keys()
