"""Every knob is documented in `.env.example`, under the variable name the settings actually read."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

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
