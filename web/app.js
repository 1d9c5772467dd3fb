// Voice agent web client with two transports behind one interface (connect(micStream, handlers) /
// disconnect()):
// - embedded: `voice-agent serve` over one RTCPeerConnection; the mic track goes up, the agent's voice
//   comes back, and the "events" data channel carries transcripts and agent state (agent/embedded/events.py);
// - room: a LiveKit room joined with livekit-client and a token from `POST /api/token`; the agent is
//   dispatched into the room by the token, transcripts arrive as "lk.transcription" text streams and the
//   agent's state as its "lk.agent.state" attribute.
// GET /api/config says which the server offers; `?mode=room` picks the room when both are there.
// A server with VOICE_AGENT_API_TOKEN wants `Authorization: Bearer <token>` on both: the token comes from the
// "Access token" field or from `?token=...` in the link (kept in sessionStorage, removed from the address bar).
// livekit-client is imported by its bare name: the page's import map (served by the app) pins its URL and
// its integrity hash, so the browser refuses other bytes.

const $ = (id) => document.getElementById(id);
const ui = {
  talk: $("talk"), state: $("agent-state"), micLevel: $("mic-level"), agentLevel: $("agent-level"),
  transcript: $("transcript"), error: $("error"), audio: $("agent-audio"), auth: $("auth"), token: $("api-token"),
};

// Observable state for people (and for the end-to-end browser test).
const status = { connected: false, agentState: "idle", agentLevelMax: 0, messages: 0 };
window.voiceAgent = status;

const TOKEN_KEY = "voiceAgentToken";

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

// POST a JSON body to the API; errors become one sentence that says what to do (401: the token, 429: wait).
async function postJson(path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const resp = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await resp.json();
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  if (resp.ok) return data;
  const detail = data.error ?? `the server answered ${resp.status}`;
  status.lastStatus = resp.status;
  if (resp.status === 401) {
    ui.auth.hidden = false;
    throw new Error(`Access denied (${detail}): enter the access token above, or open the link you were given.`);
  }
  if (resp.status === 429) {
    const wait = resp.headers.get("Retry-After");
    throw new Error(`Too many requests (${detail})${wait ? `: wait ${wait} s` : ""}.`);
  }
  throw new Error(detail);
}

class EmbeddedTransport {
  async connect(micStream, { onTrack, onMessage, onClosed }) {
    this.pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of micStream.getAudioTracks()) this.pc.addTrack(track, micStream);
    const channel = this.pc.createDataChannel("events");
    channel.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    this.pc.ontrack = (ev) => onTrack(ev.streams[0] ?? new MediaStream([ev.track]));
    this.pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(this.pc.connectionState)) onClosed();
    };
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringComplete(this.pc);
    const body = await postJson("/api/offer", {
      sdp: this.pc.localDescription.sdp,
      type: this.pc.localDescription.type,
    });
    await this.pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
  }

  async inboundAudioBytes() {
    if (!this.pc) return 0;
    let bytes = 0;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") bytes += s.bytesReceived;
    });
    return bytes;
  }

  disconnect() {
    this.pc?.close();
    this.pc = null;
  }
}

const NO_AGENT = "No agent is available right now: every agent is busy. Please try again in a minute.";

class RoomTransport {
  constructor(clientUrl, agentJoinTimeout) {
    this.clientUrl = clientUrl;
    this.agentJoinTimeout = agentJoinTimeout;
  }

  async connect(micStream, { onTrack, onMessage, onClosed }) {
    let client;
    try {
      client = await import("livekit-client"); // resolved and integrity-checked by the page's import map
    } catch (err) {
      console.error(err);
      throw new Error(
        `Could not load livekit-client from ${this.clientUrl}: offline, blocked, or its content does not ` +
          "match the pinned integrity hash (VOICE_AGENT_LIVEKIT_CLIENT_INTEGRITY).",
      );
    }
    status.livekitClientLoaded = true;
    const { Room, RoomEvent, Track, ParticipantKind } = client;
    const body = await postJson("/api/token", {});
    status.room = body.room;
    const room = new Room();
    this.room = room;
    // the token dispatches the agent; if no worker takes the room, say so instead of waiting in silence
    const isAgent = (p) => p.kind === ParticipantKind.AGENT;
    this.agentTimer = setTimeout(() => {
      if (![...room.remoteParticipants.values()].some(isAgent)) onClosed(NO_AGENT);
    }, this.agentJoinTimeout * 1000);
    room.on(RoomEvent.ParticipantConnected, (p) => isAgent(p) && clearTimeout(this.agentTimer));
    room.on(RoomEvent.TrackSubscribed, (track) => {
      if (track.kind === Track.Kind.Audio) onTrack(new MediaStream([track.mediaStreamTrack]));
    });
    room.on(RoomEvent.ParticipantAttributesChanged, (changed) => {
      if ("lk.agent.state" in changed) onMessage({ type: "agent_state", state: changed["lk.agent.state"] });
    });
    room.registerTextStreamHandler("lk.transcription", async (reader, from) => {
      const role = from.identity === room.localParticipant.identity ? "user" : "agent";
      let text = "";
      for await (const delta of reader) {
        text += delta;
        onMessage({ type: "transcript", role, text, final: false });
      }
      // the agent's streamed reply says it is final only in the stream's trailer, read once it has ended
      const final = reader.info.attributes?.["lk.transcription_final"] === "true";
      onMessage({ type: "transcript", role, text, final });
    });
    room.on(RoomEvent.Disconnected, () => this.room && onClosed());
    await room.connect(body.url, body.token);
    await room.localParticipant.publishTrack(micStream.getAudioTracks()[0], {
      source: Track.Source.Microphone,
    });
  }

  async inboundAudioBytes() {
    let bytes = 0;
    for (const participant of this.room?.remoteParticipants.values() ?? []) {
      for (const publication of participant.audioTrackPublications.values()) {
        const report = await publication.track?.getRTCStatsReport();
        report?.forEach((s) => {
          if (s.type === "inbound-rtp") bytes += s.bytesReceived;
        });
      }
    }
    return bytes;
  }

  disconnect() {
    clearTimeout(this.agentTimer);
    const room = this.room;
    this.room = null;
    room?.disconnect();
  }
}

async function chooseTransport() {
  const resp = await fetch("/api/config");
  const config = await resp.json();
  const wantRoom = new URLSearchParams(location.search).get("mode") === "room";
  if (config.room && (wantRoom || !config.embedded)) {
    return new RoomTransport(config.livekit_client_url, config.agent_join_timeout);
  }
  if (config.embedded) return new EmbeddedTransport();
  throw new Error("this server offers no way to call the agent (no models and no LiveKit settings)");
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 2000); // host candidates are enough on a LAN; don't wait forever
  });
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

// Transcript: one <li> per utterance; partial text is replaced until the final arrives.
const open = { user: null, agent: null };
function showTranscript({ role, text, final, interrupted }) {
  let li = open[role];
  if (!li) {
    li = document.createElement("li");
    li.className = `${role} partial`;
    li.innerHTML = `<span class="who"></span><span class="text"></span>`;
    li.querySelector(".who").textContent = role === "user" ? "You:" : "Agent:";
    ui.transcript.append(li);
    open[role] = li;
  }
  li.querySelector(".text").textContent = text + (interrupted ? " …" : "");
  if (final) {
    li.classList.remove("partial");
    open[role] = null;
  }
}

function handleMessage(msg) {
  status.messages += 1;
  switch (msg.type) {
    case "agent_state":
      status.agentState = msg.state;
      ui.state.textContent = msg.state;
      break;
    case "transcript":
      if (msg.text) showTranscript(msg);
      break;
    case "error":
      showError(msg.message);
      break;
  }
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

let call = null;

async function startCall() {
  showError("");
  ui.talk.disabled = true;
  try {
    const transport = await chooseTransport();
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const audioCtx = new AudioContext();
    const stops = [levelMeter(audioCtx, mic, ui.micLevel)];
    call = { mic, audioCtx, transport, stops };
    status.transport = transport;
    await transport.connect(mic, {
      onMessage: handleMessage,
      onClosed: (why) => call && hangUp(why ?? "connection lost"),
      onTrack: (stream) => {
        ui.audio.srcObject = stream;
        stops.push(levelMeter(audioCtx, stream, ui.agentLevel, (level) => {
          status.agentLevelMax = Math.max(status.agentLevelMax, level);
        }));
      },
    });
    status.connected = true;
    ui.talk.textContent = "Hang up";
    ui.talk.setAttribute("aria-pressed", "true");
  } catch (err) {
    hangUp(err.message ?? String(err));
  } finally {
    ui.talk.disabled = false;
  }
}

function hangUp(error = "") {
  if (call) {
    call.stops.forEach((stop) => stop());
    call.transport.disconnect();
    call.mic.getTracks().forEach((t) => t.stop());
    call.audioCtx.close();
    call = null;
  }
  status.connected = false;
  status.agentState = "idle";
  ui.state.textContent = "idle";
  ui.talk.textContent = "Talk";
  ui.talk.setAttribute("aria-pressed", "false");
  showError(error);
}

setupToken();
fetch("/api/config")
  .then((resp) => resp.json())
  .then((config) => { if (config.auth) ui.auth.hidden = false; })
  .catch(() => {}); // startCall reports an unreachable server
ui.talk.addEventListener("click", () => (call ? hangUp() : startCall()));
