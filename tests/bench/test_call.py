"""`voice-agent bench call`: simulated callers over real WebRTC against the embedded agent."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from agent.bench import call
from agent.bench.conversation import LOUD, Phrases, gap_seconds, onset
from agent.bench.recording import PACKET, SpeechQueue
from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer

REPLY = "Sure, here is the forecast for tomorrow. It will be mild and dry. A light wind comes from the west."


def test_onset_skips_the_leading_silence() -> None:
    pcm = np.concatenate([np.zeros(4800, np.int16), np.full(4800, 3000, np.int16)])
    assert onset(pcm) == pytest.approx(0.1)
    assert Phrases(question=pcm, interruption=pcm).interruption_onset == pytest.approx(0.1)


def test_gaps_count_digital_silence_inside_a_reply_only() -> None:
    audio = [(i * 0.02, 0.0 if 10 <= i < 15 else LOUD) for i in range(30)] + [
        (0.6 + i * 0.02, 0.0) for i in range(9)
    ]
    assert gap_seconds(audio, 0.0, 0.58) == pytest.approx(0.1)


async def test_the_microphone_picks_up_what_the_caller_hears_at_the_echo_gain() -> None:
    queue = SpeechQueue(echo_gain=10 ** (-10 / 20))
    queue.hear(np.full(PACKET, 10000, np.int16))
    assert np.abs(queue.next_packet()).mean() == pytest.approx(3162, abs=2)
    assert not queue.next_packet().any(), "echo is heard once"
    quiet = SpeechQueue()
    quiet.hear(np.full(PACKET, 10000, np.int16))
    assert not quiet.next_packet().any()


async def test_two_callers_measure_replies_and_a_barge_in(
    start_agent: StartServer, llm_server: ScriptedLLMServer
) -> None:
    llm_server.reset([REPLY])
    url = await start_agent()
    args = argparse.Namespace(
        callers=2,
        turns=1,
        target="embedded",
        url=url,
        llm="settings",
        echo_db=-10.0,
        agent_pid=os.getpid(),
        timeout=90.0,
        startup_timeout=60.0,
    )
    result = await call.run(args)
    assert result["errors"] == []
    assert result["replies"] == 2 and result["callers"] == 2 and result["echo_db"] == -10.0
    assert 0 < result["voice_to_voice_ms"]["p50"] <= result["voice_to_voice_ms"]["p95"] < 90_000
    assert 0 < result["barge_in_stop_ms"]["p50"] < 10_000
    assert result["gap_ms_per_reply"]["p50"] is not None and 0 <= result["false_barge_in_rate"] <= 1
    assert result["agent_process"]["cpu_percent"] > 0 and result["agent_process"]["rss_mb_peak"] > 100
    assert "barge-in stop p50 / p95" in call.format_table(result)
    # each caller asked twice (one turn, then the barge-in) and then once more by talking over the reply
    assert len(llm_server.requests) >= 4
