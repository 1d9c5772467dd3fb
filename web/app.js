// Voice agent web client: Talk / Hang up, the call's state, mic and agent levels, the live transcript with
// interruption markers, one latency bar per turn, and the instructions panel. The transports (embedded
// WebRTC or a LiveKit room) are in transports.js; the transcript and latency views in views.js.
// GET /api/config says which transports the server offers; `?mode=room` picks the room when both are there.
// A server with VOICE_AGENT_API_TOKEN wants `Authorization: Bearer <token>`: the token comes from the
// "Access token" field or from `?token=...` in the link (kept in sessionStorage, removed from the address bar).

import { EmbeddedTransport, RoomTransport, TOKEN_KEY } from "./transports.js";
import { LatencyBars, Transcript } from "./views.js";

const $ = (id) => document.getElementById(id);
const ui = {
  talk: $("talk"), callState: $("call-state"), state: $("agent-state"), micLevel: $("mic-level"),
  agentLevel: $("agent-level"), error: $("error"), audio: $("agent-audio"), auth: $("auth"), token: $("api-token"),
  instructions: $("instructions"), instructionsText: $("instructions-text"), apply: $("apply"),
  instructionsStatus: $("instructions-status"),
};
const transcript = new Transcript($("transcript"));
const latency = new LatencyBars($("latency"), $("latency-empty"));

// Observable state for people (and for the end-to-end browser tests).
const status = {
  connected: false, callState: "idle", agentState: "idle", agentLevelMax: 0, messages: 0,
  turns: [], agentTexts: [], instructionsApplied: 0,
};
window.voiceAgent = status;

function setupToken() {
  const params = new URLSearchParams(location.search);
  const fromLink = params.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    params.delete("token"); // out of the address bar, the history and any Referer
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? `?${query}` : "") + location.hash);
  }
  ui.token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
  ui.token.addEventListener("input", () => {
    const value = ui.token.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  ui.auth.addEventListener("submit", (ev) => ev.preventDefault());
}

const showAuth = () => { ui.auth.hidden = false; };

async function chooseTransport(config) {
  const wantRoom = new URLSearchParams(location.search).get("mode") === "room";
  if (config.room && (wantRoom || !config.embedded)) {
    return new RoomTransport(config.livekit_client_url, config.agent_join_timeout, showAuth, status);
  }
  if (config.embedded) return new EmbeddedTransport(showAuth);
  throw new Error("this server offers no way to call the agent (no models and no LiveKit settings)");
}

// Level meters: RMS of an AnalyserNode, refreshed every animation frame.
function levelMeter(audioCtx, stream, meter, onLevel) {
  const analyser = audioCtx.createAnalyser();
  analyser.fftSize = 1024;
  audioCtx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  let running = true;
  const tick = () => {
    if (!running) return;
    analyser.getFloatTimeDomainData(buf);
    const rms = Math.sqrt(buf.reduce((a, x) => a + x * x, 0) / buf.length);
    const level = Math.min(1, rms * 4);
    meter.value = level;
    onLevel?.(level);
    requestAnimationFrame(tick);
  };
  tick();
  return () => { running = false; meter.value = 0; };
}

function handleMessage(msg) {
  status.messages += 1;
  switch (msg.type) {
    case "agent_state":
      status.agentState = msg.state;
      ui.state.textContent = msg.state;
      break;
    case "transcript":
      if (msg.role === "agent") status.agentTexts.push({ text: msg.text, final: msg.final });
      if (msg.text) transcript.show(msg);
      break;
    case "reply_end":
      if (msg.interrupted) transcript.markInterrupted();
      break;
    case "false_interruption":
      transcript.falseInterruption(msg.resumed);
      break;
    case "metrics": {
      const turn = latency.add(msg);
      if (turn) status.turns.push(turn);
      break;
    }
    case "error":
      showError(msg.source === "channel" ? `The agent could not use a message from this page: ${msg.message}.`
        : msg.message);
      break;
  }
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

// idle | connecting | connected | reconnecting | failed | ended
function setCallState(state) {
  status.callState = state;
  status.connected = state === "connected" || state === "reconnecting";
  ui.callState.textContent = state;
  ui.callState.dataset.state = state;
  ui.apply.disabled = !status.connected || !config.live_instructions;
}

let call = null;
let config = {};

async function startCall() {
  showError("");
  ui.talk.disabled = true;
  setCallState("connecting");
  transcript.clear();
  latency.clear();
  try {
    const transport = await chooseTransport(await configReady);
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const audioCtx = new AudioContext();
    const stops = [levelMeter(audioCtx, mic, ui.micLevel)];
    call = { mic, audioCtx, transport, stops };
    status.transport = transport;
    ui.talk.textContent = "Hang up"; // hanging up is possible while connecting
    ui.talk.setAttribute("aria-pressed", "true");
    ui.talk.disabled = false;
    await transport.connect(mic, {
      onMessage: handleMessage,
      onState: (state) => call?.transport === transport && setCallState(state),
      onClosed: (why) => call?.transport === transport && hangUp(why ? "failed" : "ended", why ?? ""),
      onTrack: (stream) => {
        ui.audio.srcObject = stream;
        stops.push(levelMeter(audioCtx, stream, ui.agentLevel, (level) => {
          status.agentLevelMax = Math.max(status.agentLevelMax, level);
        }));
      },
    });
  } catch (err) {
    if (call) hangUp("failed", err.message ?? String(err));
    else { setCallState("failed"); showError(err.message ?? String(err)); }
  } finally {
    ui.talk.disabled = false;
  }
}

function hangUp(state = "ended", error = "") {
  if (call) {
    call.stops.forEach((stop) => stop());
    call.transport.disconnect();
    call.mic.getTracks().forEach((t) => t.stop());
    call.audioCtx.close();
    call = null;
  }
  setCallState(state);
  status.agentState = "idle";
  ui.state.textContent = "idle";
  ui.talk.textContent = "Talk";
  ui.talk.setAttribute("aria-pressed", "false");
  showError(error);
}

// The instructions panel: Apply (or Ctrl+Enter) sends them to the agent, whose next reply follows them;
// Escape puts back the last applied text.
let applied = "";

function setInstructionsStatus(text, isError = false) {
  ui.instructionsStatus.textContent = text;
  ui.instructionsStatus.classList.toggle("error", isError);
}

async function applyInstructions() {
  const text = ui.instructionsText.value.trim();
  if (!text) {
    setInstructionsStatus("Write the new instructions first.", true);
    ui.instructionsText.focus();
    return;
  }
  if (!call) return;
  ui.apply.disabled = true;
  setInstructionsStatus("Applying…");
  try {
    await call.transport.setInstructions(text);
    applied = text;
    status.instructionsApplied += 1;
    setInstructionsStatus("Applied: the agent's next reply follows them.");
  } catch (err) {
    setInstructionsStatus(`Not applied: ${err.message}.`, true);
  } finally {
    ui.apply.disabled = !status.connected;
  }
}

function setupInstructions() {
  ui.instructions.addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyInstructions();
  });
  ui.instructionsText.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      ui.instructions.requestSubmit();
    } else if (ev.key === "Escape" && ui.instructionsText.value !== applied) {
      ev.preventDefault();
      ui.instructionsText.value = applied;
      setInstructionsStatus(applied ? "Back to the applied instructions." : "Edits cleared.");
    }
  });
}

function applyConfig() {
  if (config.auth) ui.auth.hidden = false;
  if (config.instructions_max_chars) ui.instructionsText.maxLength = config.instructions_max_chars;
  if (!config.live_instructions) {
    ui.instructionsText.disabled = true;
    setInstructionsStatus("Changing the instructions during a call is turned off on this server.");
  }
  setCallState(status.callState);
}

setupToken();
setupInstructions();
setCallState("idle");
ui.talk.addEventListener("click", () => (call ? hangUp() : startCall()));
const configReady = fetch("/api/config")
  .then((resp) => resp.json())
  .then((body) => { config = body; applyConfig(); return body; })
  .catch(() => { throw new Error("The server cannot be reached: reload the page to try again."); });
configReady.catch((err) => showError(err.message));
