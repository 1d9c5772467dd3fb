"""Every knob of the agent, read from the environment and `.env` (documented in `.env.example`)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GROQ_BASE_URL = "https://api.groq.com/openai/v1"

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly, concise voice assistant. Your replies are spoken aloud, so answer in short, "
    "natural sentences without markdown, lists, emoji or URLs. Ask a brief follow-up question when the "
    "request is unclear."
)


def default_conversations_path() -> Path:
    """$XDG_DATA_HOME/voice-agent/conversations.db (~/.local/share/... when XDG_DATA_HOME is unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "voice-agent" / "conversations.db"


class Settings(BaseSettings):
    """Ecosystem names where they exist (`GROQ_API_KEY`), `VOICE_AGENT_*` for everything else."""

    model_config = SettingsConfigDict(
        env_prefix="VOICE_AGENT_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    # --- LLM (Groq, or any OpenAI-compatible endpoint) ---
    groq_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GROQ_API_KEY", "VOICE_AGENT_GROQ_API_KEY")
    )
    llm_model: str = "llama-3.3-70b-versatile"
    llm_base_url: str = GROQ_BASE_URL
    llm_temperature: float = 0.7
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # tried in order when the model above fails or misses a deadline: models on the same endpoint, then
    # one model on any OpenAI-compatible URL (a self-hosted server, another provider)
    llm_fallback_models: list[str] = Field(default_factory=lambda: ["llama-3.1-8b-instant"])
    llm_fallback_url: str | None = None
    llm_fallback_url_model: str = "llama-3.1-8b-instant"
    llm_fallback_api_key: SecretStr | None = None
    # per model: connecting, then the first streamed token, then the longest gap between chunks
    llm_connect_timeout: float = Field(default=2.0, gt=0.0, le=60.0)
    llm_first_token_timeout: float = Field(default=4.0, gt=0.0, le=120.0)
    llm_stall_timeout: float = Field(default=4.0, gt=0.0, le=120.0)
    # spoken when every model has failed a turn; the call goes on and the next turn tries them again
    llm_apology: str = "Sorry, I couldn't come up with an answer just now. Could you say that again?"
    # the LLM sees the instructions plus this many recent chat items (messages, tool calls)
    max_history_items: int = Field(default=40, ge=2, le=10000)
    # the page's instructions panel: the caller may replace the agent's instructions during the call
    live_instructions: bool = True
    instructions_max_chars: int = Field(default=4000, ge=1, le=100000)

    # --- STT (local Parakeet) ---
    stt_model: str = "nvidia/parakeet-tdt-0.6b-v2"
    stt_left_context: float = Field(default=5.6, ge=0.0, le=60.0)
    stt_chunk_size: float = Field(default=0.48, gt=0.0, le=10.0)
    stt_right_context: float = Field(default=0.32, ge=0.0, le=10.0)
    stt_att_context_size: tuple[int, int] | None = None
    stt_max_batch_size: int = Field(default=16, ge=1, le=1024)
    stt_max_wait_ms: float = Field(default=20.0, ge=0.0, le=1000.0)
    stt_cuda_graphs: bool = True

    # --- TTS (local Chatterbox) ---
    tts_model: str = "ResembleAI/chatterbox"
    tts_voice: Path | None = None
    tts_exaggeration: float = Field(default=0.5, ge=0.0, le=2.0)
    tts_cfg_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    tts_temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    tts_watermark: bool = True
    tts_chunk_tokens: tuple[int, ...] = (20, 40, 80)
    tts_normalize_text: bool = True

    # --- hardware ---
    device: str = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    # --- turn taking and barge-in ---
    turn_detection: Literal["model", "vad"] = "model"
    vad_min_silence_duration: float = Field(default=0.3, gt=0.0)
    vad_min_speech_duration: float = Field(default=0.05, gt=0.0, le=1.0)
    vad_activation_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    min_endpointing_delay: float = Field(default=0.5, ge=0.0)
    max_endpointing_delay: float = Field(default=3.0, ge=0.0)
    min_interruption_duration: float = Field(default=0.5, ge=0.0)
    false_interruption_timeout: float = Field(default=2.0, gt=0.0)
    first_fragment_min_words: int = Field(default=4, ge=0)
    aec_warmup_duration: float = Field(default=0.0, ge=0.0)

    # --- embedded server ---
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_sessions: int = Field(default=8, ge=1)
    # an answered offer that has not connected (ICE + DTLS) by then is dropped; it never holds a session slot
    connect_timeout: float = Field(default=5.0, gt=0.0, le=120.0)
    # 20 ms packets of caller audio held before decoding (aiortc's own default is 4: 80 ms later barge-ins)
    receive_jitter_packets: int = Field(default=1, ge=1, le=8)
    # cancel the agent's own voice in what embedded callers send (agent/embedded/echo.py)
    echo_cancellation: bool = True
    ice_servers: list[str] = Field(default_factory=list)

    # --- logs (agent/logs.py) ---
    # text (for people) or json (one object per line; a call's records carry its session_id, room, participant)
    log_format: Literal["text", "json"] = "text"

    # --- HTTP security (POST /api/offer, POST /api/token; agent/embedded/guard.py) ---
    # bearer secret for the API; required when VOICE_AGENT_HOST is not loopback
    api_token: SecretStr | None = None
    # reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client; else the peer address is
    trusted_proxies: list[str] = Field(default_factory=list)
    # per client address (IPv6: per /64), each endpoint: requests a minute (bursts of as many)
    rate_limit_per_minute: int = Field(default=30, ge=1, le=100000)
    # per client: embedded calls open at once (connecting or connected)
    max_sessions_per_client: int = Field(default=4, ge=1)
    # answered offers still connecting; beyond this the oldest is dropped
    max_pending_offers: int = Field(default=16, ge=1)
    # per client: room tokens held at once (until unused past their TTL, or the caller left: webhook)
    max_rooms_per_client: int = Field(default=3, ge=1)
    # POST /api/livekit/webhook: LiveKit room events, verified with LIVEKIT_API_KEY / LIVEKIT_API_SECRET
    webhook_enabled: bool = False

    # --- LiveKit worker mode and room tokens (the ecosystem's names for URL and keys) ---
    livekit_url: str | None = Field(default=None, validation_alias=AliasChoices("LIVEKIT_URL"))
    livekit_api_key: str | None = Field(default=None, validation_alias=AliasChoices("LIVEKIT_API_KEY"))
    livekit_api_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LIVEKIT_API_SECRET")
    )
    livekit_public_url: str | None = None
    agent_name: str = "voice-agent"
    drain_timeout: float = Field(default=300.0, gt=0.0)
    worker_port: int = Field(default=8081, ge=0, le=65535)
    max_gpu_memory_fraction: float = Field(default=0.9, gt=0.0, le=1.0)
    token_ttl: float = Field(default=600.0, gt=0.0, le=86400.0)
    # the page gives up on a room no agent joined by then (every worker busy, or none running)
    agent_join_timeout: float = Field(default=15.0, gt=0.0, le=600.0)
    # the page's livekit-client ES module; host it yourself on networks without internet access
    livekit_client_url: str = "https://cdn.jsdelivr.net/npm/livekit-client@2.23.0/dist/livekit-client.esm.mjs"
    # its Subresource Integrity hash (sha384 of livekit-client@2.23.0's dist/livekit-client.esm.mjs): change
    # it together with the URL; the browser refuses a module whose bytes do not match
    livekit_client_integrity: str = Field(
        default="sha384-gOhNcq2nph85FH7JeF7MGODcX1HoG/AABw6v3tYH9mOatDElHjbaHOL7JMHug8ML",
        pattern=r"^sha(256|384|512)-[A-Za-z0-9+/]+={0,2}$",
    )
    # serve this local livekit-client.esm.mjs instead (nothing loaded from a CDN; hash computed at startup)
    livekit_client_file: Path | None = None

    # --- phone calls (livekit-sip) ---
    sip_inbound_trunk: Path = Path("infra/sip/inbound-trunk.json")
    sip_dispatch_rule: Path = Path("infra/sip/dispatch-rule.json")
    sip_outbound_trunk: Path = Path("infra/sip/outbound-trunk.json")
    # override the definitions' fields (JSON lists, e.g. ["+15550100000"])
    sip_numbers: list[str] | None = None
    sip_allowed_addresses: list[str] | None = None
    sip_auth_username: str | None = None
    sip_auth_password: SecretStr | None = None
    sip_outbound_address: str | None = None
    sip_outbound_number: str | None = None  # the caller ID of outbound calls
    sip_outbound_auth_username: str | None = None
    sip_outbound_auth_password: SecretStr | None = None
    # spoken as soon as a call is answered; empty: the LLM greets, following the instructions
    phone_greeting: str = "Hello, thanks for calling. How can I help you today?"
    # phone lines carry 300-3400 Hz: the STT hears the call at this rate, not the room's 24 kHz
    phone_sample_rate: int = Field(default=8000, ge=8000, le=48000)
    phone_min_endpointing_delay: float = Field(default=0.6, ge=0.0)
    phone_min_interruption_duration: float = Field(default=0.6, ge=0.0)
    # key presses: digits wait this long for the next one; "#" ends the entry at once
    dtmf_digit_timeout: float = Field(default=3.0, gt=0.0, le=60.0)
    # a tel: or sip: URI; the transfer tool is offered on phone calls only when it is set
    transfer_to: str | None = None
    max_call_duration: float = Field(default=1800.0, gt=0.0)
    # caller silent this long: the agent asks whether they are still there; as long again: it hangs up
    caller_silence_timeout: float = Field(default=20.0, gt=0.0)

    # --- saved conversations (agent/conversations) ---
    conversations_enabled: bool = True
    # the SQLite file; VOICE_AGENT_CONVERSATIONS_URL (postgresql://user:password@host:5432/db) overrides it
    conversations_path: Path = Field(default_factory=default_conversations_path)
    conversations_url: SecretStr | None = None
    # calls that started longer ago are deleted (at startup, then hourly); 0 keeps them forever
    conversations_retention_days: int = Field(default=0, ge=0, le=36500)

    @field_validator("api_token")
    @classmethod
    def _check_api_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return v

    @field_validator("conversations_url")
    @classmethod
    def _check_conversations_url(cls, v: SecretStr | None) -> SecretStr | None:
        scheme = v.get_secret_value().partition("://")[0] if v is not None else "postgresql"
        if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError("must be a PostgreSQL URL: postgresql://user:password@host:5432/database")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, v: list[str]) -> list[str]:
        for proxy in v:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names the bad entry
        return v

    @field_validator("transfer_to")
    @classmethod
    def _check_transfer_to(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("tel:", "sip:")):
            raise ValueError("must be a tel: or sip: URI, e.g. tel:+15550100000 or sip:desk@pbx.example.com")
        return v

    @field_validator("stt_att_context_size")
    @classmethod
    def _check_att_context_size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] < -1 or v[0] == 0 or v[1] < 0):
            raise ValueError(
                "must be [left, right] encoder frames: left > 0 (or -1 for unlimited), right >= 0"
            )
        return v

    @field_validator("tts_chunk_tokens")
    @classmethod
    def _check_chunk_tokens(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 1:
            raise ValueError("must be a list of positive speech-token counts, e.g. [20,40,80]")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v not in ("auto", "cpu") and not v.startswith("cuda"):
            raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return v

    @property
    def has_livekit(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)

    @property
    def uses_groq(self) -> bool:
        return urlparse(self.llm_base_url).hostname == urlparse(GROQ_BASE_URL).hostname
