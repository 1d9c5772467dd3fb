// Voice agent web client. Embedded mode talks to `voice-agent serve` over one RTCPeerConnection:
// the mic track goes up, the agent's voice comes back, and the "events" data channel carries
// transcripts and agent state (JSON, see agent/embedded/events.py). Transports share one interface
// (connect(micStream, handlers) / disconnect()) so a LiveKit room transport can sit beside it.

const $ = (id) => document.getElementById(id);
const ui = {
  talk: $("talk"), state: $("agent-state"), micLevel: $("mic-level"), agentLevel: $("agent-level"),
  transcript: $("transcript"), error: $("error"), audio: $("agent-audio"),
};

// Observable state for people (and for the end-to-end browser test).
const status = { connected: false, agentState: "idle", agentLevelMax: 0, messages: 0 };
window.voiceAgent = status;

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
    const resp = await fetch("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: this.pc.localDescription.sdp, type: this.pc.localDescription.type }),
    });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error ?? `server answered ${resp.status}`);
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
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const audioCtx = new AudioContext();
    const transport = new EmbeddedTransport();
    const stops = [levelMeter(audioCtx, mic, ui.micLevel)];
    call = { mic, audioCtx, transport, stops };
    status.transport = transport;
    await transport.connect(mic, {
      onMessage: handleMessage,
      onClosed: () => call && hangUp("connection lost"),
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

ui.talk.addEventListener("click", () => (call ? hangUp() : startCall()));
