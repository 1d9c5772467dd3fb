// The two ways to reach the agent, behind one interface:
//   connect(micStream, { onTrack, onMessage, onState, onClosed }), setInstructions(text), disconnect().
// - EmbeddedTransport: `voice-agent serve` over one RTCPeerConnection; the mic track goes up, the agent's
//   voice comes back, and the "events" data channel carries the session's messages
//   (agent/embedded/events.py) and the instructions panel's requests and replies (agent/live_instructions.py);
// - RoomTransport: a LiveKit room joined with livekit-client and a token from `POST /api/token`; the agent is
//   dispatched into the room by the token, transcripts arrive as "lk.transcription" text streams, the
//   agent's state as its "lk.agent.state" attribute, and the rest of the messages as data packets on
//   EVENTS_TOPIC (agent/room_page.py); instructions go to the agent by RPC.
// onState(state) reports "connected" and "reconnecting"; onClosed(error?) ends the call.
// livekit-client is imported by its bare name: the page's import map (served by the app) pins its URL and
// its integrity hash, so the browser refuses other bytes.

export const TOKEN_KEY = "voiceAgentToken";
const EVENTS_TOPIC = "voice-agent.events";
const INSTRUCTIONS_METHOD = "voice-agent.instructions";
const REPLY_TIMEOUT_MS = 10_000;
const RECONNECT_GRACE_MS = 10_000; // ICE "disconnected" often heals by itself; past this it is lost

// POST a JSON body to the API; errors become one sentence that says what to do (401: the token, 429: wait).
// `onDenied` is called on 401 (the page then shows the token field).
export async function postJson(path, body, onDenied) {
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
  if (resp.status === 401) {
    onDenied?.();
    throw new Error(`Access denied (${detail}): enter the access token above, or open the link you were given.`);
  }
  if (resp.status === 429) {
    const wait = resp.headers.get("Retry-After");
    throw new Error(`Too many requests (${detail})${wait ? `: wait ${wait} s` : ""}.`);
  }
  throw new Error(detail);
}

export class EmbeddedTransport {
  constructor(onDenied) {
    this.onDenied = onDenied;
    this.pending = new Map(); // instructions request id -> { resolve, reject, timer }
    this.nextId = 1;
  }

  async connect(micStream, { onTrack, onMessage, onState, onClosed }) {
    this.pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of micStream.getAudioTracks()) this.pc.addTrack(track, micStream);
    const channel = this.pc.createDataChannel("events");
    this.channel = channel;
    channel.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; // the agent only sends JSON; nothing sensible to show for anything else
      }
      if (msg.type === "instructions") this.settle(msg);
      else onMessage(msg);
    };
    // the agent ended the session (its side closes the channel first)
    channel.onclose = () => this.pc && onClosed();
    this.pc.ontrack = (ev) => onTrack(ev.streams[0] ?? new MediaStream([ev.track]));
    this.pc.onconnectionstatechange = () => {
      const state = this.pc?.connectionState;
      clearTimeout(this.graceTimer);
      if (state === "connected") onState("connected");
      else if (state === "disconnected") {
        onState("reconnecting");
        this.graceTimer = setTimeout(() => onClosed("The connection to the agent was lost."), RECONNECT_GRACE_MS);
      } else if (state === "failed") onClosed("The connection to the agent failed (network or firewall).");
      else if (state === "closed") onClosed();
    };
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringComplete(this.pc);
    const body = await postJson(
      "/api/offer",
      { sdp: this.pc.localDescription.sdp, type: this.pc.localDescription.type },
      this.onDenied,
    );
    await this.pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
  }

  setInstructions(text) {
    if (this.channel?.readyState !== "open") return Promise.reject(new Error("the call is not connected"));
    const id = this.nextId++;
    this.channel.send(JSON.stringify({ type: "instructions", id, text }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("the agent did not answer"));
      }, REPLY_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  settle(reply) {
    const request = this.pending.get(reply.id);
    if (!request) return;
    this.pending.delete(reply.id);
    clearTimeout(request.timer);
    if (reply.ok) request.resolve();
    else request.reject(new Error(reply.error));
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
    clearTimeout(this.graceTimer);
    const pc = this.pc;
    this.pc = null;
    pc?.close();
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error("the call ended"));
    }
    this.pending.clear();
  }
}

const NO_AGENT = "No agent is available right now: every agent is busy. Please try again in a minute.";

export class RoomTransport {
  // `status`: the page's observable state (window.voiceAgent), told when livekit-client loaded and the room
  constructor(clientUrl, agentJoinTimeout, onDenied, status) {
    this.clientUrl = clientUrl;
    this.agentJoinTimeout = agentJoinTimeout;
    this.onDenied = onDenied;
    this.status = status;
  }

  async connect(micStream, { onTrack, onMessage, onState, onClosed }) {
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
    this.status.livekitClientLoaded = true;
    const { Room, RoomEvent, Track, ParticipantKind } = client;
    const body = await postJson("/api/token", {}, this.onDenied);
    this.status.room = body.room;
    const room = new Room();
    this.room = room;
    // the token dispatches the agent; if no worker takes the room, say so instead of waiting in silence
    this.isAgent = (p) => p.kind === ParticipantKind.AGENT;
    this.agentTimer = setTimeout(() => {
      if (!this.agent()) onClosed(NO_AGENT);
    }, this.agentJoinTimeout * 1000);
    room.on(RoomEvent.ParticipantConnected, (p) => this.isAgent(p) && clearTimeout(this.agentTimer));
    room.on(RoomEvent.TrackSubscribed, (track) => {
      if (track.kind === Track.Kind.Audio) onTrack(new MediaStream([track.mediaStreamTrack]));
    });
    room.on(RoomEvent.ParticipantAttributesChanged, (changed) => {
      if ("lk.agent.state" in changed) onMessage({ type: "agent_state", state: changed["lk.agent.state"] });
    });
    room.on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
      if (topic !== EVENTS_TOPIC || !participant || !this.isAgent(participant)) return;
      try {
        onMessage(JSON.parse(new TextDecoder().decode(payload)));
      } catch {
        // not ours
      }
    });
    room.registerTextStreamHandler("lk.transcription", async (reader, from) => {
      const role = from.identity === room.localParticipant.identity ? "user" : "agent";
      let text = "";
      for await (const delta of reader) {
        text += delta; // RoomIO releases the agent's words as they are spoken
        onMessage({ type: "transcript", role, text, final: false });
      }
      // the agent's streamed reply says it is final only in the stream's trailer, read once it has ended
      const final = reader.info.attributes?.["lk.transcription_final"] === "true";
      onMessage({ type: "transcript", role, text, final });
    });
    room.on(RoomEvent.Reconnecting, () => onState("reconnecting"));
    room.on(RoomEvent.Reconnected, () => onState("connected"));
    room.on(RoomEvent.Disconnected, () => this.room && onClosed());
    await room.connect(body.url, body.token);
    await room.localParticipant.publishTrack(micStream.getAudioTracks()[0], {
      source: Track.Source.Microphone,
    });
    onState("connected");
  }

  agent() {
    return [...(this.room?.remoteParticipants.values() ?? [])].find(this.isAgent);
  }

  async setInstructions(text) {
    const agent = this.agent();
    if (!agent) throw new Error("no agent is in the call yet");
    try {
      await this.room.localParticipant.performRpc({
        destinationIdentity: agent.identity,
        method: INSTRUCTIONS_METHOD,
        payload: JSON.stringify({ text }),
        responseTimeout: REPLY_TIMEOUT_MS,
      });
    } catch (err) {
      throw new Error(err.message ?? String(err)); // an RpcError carries the agent's reason
    }
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
