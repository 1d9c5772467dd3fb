"""Saved conversations: every call's transcript, metrics and metadata, written as the call happens to SQLite
(VOICE_AGENT_CONVERSATIONS_PATH) or PostgreSQL (VOICE_AGENT_CONVERSATIONS_URL) by one writer thread per
process; read back by `voice-agent conversations` and `GET /api/conversations`."""
