"""Every knob is documented in `.env.example`, under the variable name the settings actually read."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.plugins import chatterbox
from pydantic import AliasChoices, ValidationError

from agent.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def env_names() -> dict[str, str]:
    names = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names[field] = str(alias.choices[0])
        else:
            names[field] = "VOICE_AGENT_" + field.upper()
    return names


def test_every_setting_is_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    missing = [name for name in env_names().values() if f"{name}=" not in example]
    assert not missing, f"undocumented settings: {missing}"


def test_livekit_settings_use_the_ecosystem_names() -> None:
    names = env_names()
    assert names["livekit_url"] == "LIVEKIT_URL"
    assert names["livekit_api_key"] == "LIVEKIT_API_KEY"
    assert names["livekit_api_secret"] == "LIVEKIT_API_SECRET"
    assert names["groq_api_key"] == "GROQ_API_KEY"


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names().values():
        monkeypatch.delenv(name, raising=False)
    documented = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert documented == Settings(_env_file=None)  # type: ignore[call-arg]
    assert documented.tts_chunk_tokens == chatterbox.DEFAULT_CHUNK_TOKENS


def test_tts_chunk_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_AGENT_TTS_CHUNK_TOKENS", "[10,30]")
    assert Settings(_env_file=None).tts_chunk_tokens == (10, 30)  # type: ignore[call-arg]
    for bad in ("[]", "[20,0]", "[-5]"):
        monkeypatch.setenv("VOICE_AGENT_TTS_CHUNK_TOKENS", bad)
        with pytest.raises(ValidationError, match="positive speech-token counts"):
            Settings(_env_file=None)  # type: ignore[call-arg]
