"""What the page shows and does during a real call in headless Chromium (embedded mode): started and driven
by keyboard only, the agent's words revealed as they are spoken, one latency bar per turn with numbers, the
instructions panel changing the agent's system prompt, a malformed channel message answered with an error
while the call goes on, and an interrupted reply marked."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.async_api import Page

from tests.browser import talking_page
from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak, write_wav

REPLY = "Hello from the agent. It is nice to meet you, and I can hear you very well today."
PIRATE = "Answer like a pirate, in one short sentence."


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(48000 * seconds), np.int16)


def mic_file(clips_dir: Path, name: str, *parts: np.ndarray) -> Path:
    return write_wav(clips_dir / name, np.concatenate(parts), 48000)


async def press_tab_until(page: Page, element_id: str, limit: int = 10) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement?.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def system_prompt(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] in ("system", "developer"))


async def test_the_page_during_a_call(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path, tmp_path: Path
) -> None:
    llm_server.replies = [REPLY]
    llm_server.tokens_per_second = 20
    questions = [speak(q, clips_dir) for q in ("Hi, can you hear me?", "How are you?", "What time is it?")]
    mic = mic_file(
        clips_dir, "page-mic.wav", silence(2), questions[0], silence(14), questions[1], silence(14),
        questions[2], silence(6),
    )  # fmt: skip
    url = await start_agent()

    async with talking_page(url, mic, press_talk=False) as (page, errors):
        # keyboard only: Tab to Talk, Enter
        await press_tab_until(page, "talk")
        await page.keyboard.press("Enter")
        await page.wait_for_function("window.voiceAgent.callState === 'connected'", timeout=30_000)
        assert await page.locator("#call-state").text_content() == "connected"

        # the first answer: its words revealed one after the other, then one latency bar with numbers
        await llm_server.wait_for_requests(1, timeout=90)
        await page.locator("#transcript li.agent:not(.partial)").first.wait_for(timeout=60_000)
        texts = await page.evaluate("window.voiceAgent.agentTexts")
        final_at = next(i for i, t in enumerate(texts) if t["final"])
        partials = [t["text"] for t in texts[:final_at]]
        assert len(partials) >= 4, texts
        assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(partials))
        assert texts[final_at]["text"].startswith(partials[-1].strip())

        bar = page.locator("#latency li.turn").first
        await bar.wait_for(timeout=30_000)
        numbers = await bar.locator(".stage .num").all_text_contents()
        labels = await bar.locator(".stage dt").all_text_contents()
        assert labels == ["End of turn", "STT", "LLM first token", "TTS first audio", "Total"]
        assert all(n.endswith(" ms") for n in numbers), numbers  # every stage measured
        assert "voice to voice" in (await bar.locator("h3").text_content() or "")
        turn = (await page.evaluate("window.voiceAgent.turns"))[0]
        assert turn["e2e_latency"] > 0 and turn["llm_node_ttft"] > 0

        # the instructions panel, by keyboard: Tab to the text, type, Tab to Apply, Enter
        await press_tab_until(page, "instructions-text")
        await page.keyboard.type(PIRATE)
        await press_tab_until(page, "apply")
        await page.keyboard.press("Enter")
        await page.wait_for_function("window.voiceAgent.instructionsApplied === 1", timeout=10_000)
        applied_at = time.monotonic()
        assert "Applied" in (await page.locator("#instructions-status").text_content() or "")
        await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        # a malformed message on the data channel: an error on the page, and the call goes on
        await page.evaluate("window.voiceAgent.transport.channel.send('{oops')")
        error = page.locator("#error")
        await error.wait_for(state="visible", timeout=10_000)
        assert "not valid JSON" in (await error.text_content() or "")
        malformed_at = time.monotonic()

        # the next LLM requests (later questions in the mic file) carry the new instructions
        await llm_server.wait_for_requests(
            len([r for r in llm_server.requests if r.started_at < malformed_at]) + 1, timeout=90
        )
        later = [r for r in llm_server.requests if r.started_at > applied_at]
        assert later and later[-1].started_at > malformed_at, (
            "a question after the change and the bad message"
        )
        assert all(system_prompt(r.body) == PIRATE for r in later)
        assert system_prompt(llm_server.requests[0].body) != PIRATE
        assert await page.evaluate("window.voiceAgent.callState") == "connected"

        await page.get_by_role("button", name="Hang up").click()
        await page.wait_for_function("window.voiceAgent.callState === 'ended'", timeout=5_000)
        assert not errors, errors


LONG_REPLY = " ".join(
    f"Here is sentence number {i} of a very long story that keeps on going." for i in range(1, 25)
)


async def test_an_interrupted_reply_is_marked(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    llm_server.replies = [LONG_REPLY, "Okay, I stopped."]
    llm_server.tokens_per_second = 6  # still speaking when the caller talks over it
    mic = mic_file(
        clips_dir, "interrupt-mic.wav", silence(2), speak("Please tell me a long story.", clips_dir),
        silence(15), speak("Stop, stop. Wait a moment please.", clips_dir), silence(8),
    )  # fmt: skip
    url = await start_agent()

    async with talking_page(url, mic) as (page, errors):
        line = page.locator("#transcript li.agent.interrupted").first
        await line.wait_for(timeout=120_000)
        assert await line.locator(".badge").text_content() == "interrupted"
        heard = (await line.locator(".text").text_content() or "").strip()
        assert heard and LONG_REPLY.startswith(heard[:30]) and len(heard) < len(LONG_REPLY)
        assert not await line.evaluate("li => li.classList.contains('partial')")
        assert not errors, errors
