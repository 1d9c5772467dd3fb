// What the page shows of the conversation: the transcript (with interruption markers) and one latency bar
// per turn. Both are driven by the agent's messages (agent/embedded/events.py), whatever the transport.

// Transcript: one <li> per utterance; partial text is replaced until the final arrives. The agent's partial
// text grows word by word as it is spoken.
export class Transcript {
  constructor(list) {
    this.list = list;
    this.open = { user: null, agent: null };
    this.lastAgent = null;
  }

  show({ role, text, final, interrupted }) {
    let li = this.open[role];
    if (!li) {
      li = document.createElement("li");
      li.className = `${role} partial`;
      li.innerHTML = `<span class="who"></span><span class="text"></span>`;
      li.querySelector(".who").textContent = role === "user" ? "You:" : "Agent:";
      this.list.append(li);
      this.open[role] = li;
      if (role === "agent") this.lastAgent = li;
    }
    li.querySelector(".text").textContent = text;
    if (interrupted) this.markInterrupted(li);
    if (final) {
      li.classList.remove("partial");
      this.open[role] = null;
    }
    li.scrollIntoView({ block: "nearest" });
  }

  // The caller talked over this reply: it ends where they stopped hearing it.
  markInterrupted(li = this.open.agent ?? this.lastAgent) {
    if (!li || li.classList.contains("interrupted")) return;
    li.classList.add("interrupted");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "interrupted";
    li.append(badge);
  }

  // A noise (or a word too short to count) paused the agent; it resumed where it was, or gave up.
  falseInterruption(resumed) {
    const li = document.createElement("li");
    li.className = "event";
    li.textContent = resumed
      ? "Paused for a sound that was not speech, then went on."
      : "Paused for a sound that was not speech.";
    this.list.append(li);
  }

  clear() {
    this.list.replaceChildren();
    this.open = { user: null, agent: null };
    this.lastAgent = null;
  }
}

// The stages of one turn, in the order they happen after the caller stops speaking. STT and end of turn
// both count from the end of speech; the LLM and the TTS from when they were asked; total is voice to voice.
const STAGES = [
  ["end_of_turn_delay", "End of turn", "eot"],
  ["transcription_delay", "STT", "stt"],
  ["llm_node_ttft", "LLM first token", "llm"],
  ["tts_node_ttfb", "TTS first audio", "tts"],
  ["e2e_latency", "Total", "total"],
];
const MAX_TURNS = 6;

const ms = (seconds) => `${Math.round(seconds * 1000)} ms`;

// One bar per turn from the "metrics" messages: the user's item brings STT and end of turn, the agent's
// reply the LLM, TTS and total. Newest turn first.
export class LatencyBars {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.userPart = null;
    this.count = 0;
  }

  add(msg) {
    if (msg.role === "user") {
      this.userPart = msg;
      return null;
    }
    const turn = { ...(this.userPart ?? {}), ...msg };
    this.userPart = null;
    this.count += 1;
    this.render(turn, this.count);
    return turn;
  }

  render(turn, n) {
    const values = STAGES.map(([key]) => turn[key]).filter((v) => typeof v === "number");
    const scale = Math.max(...values, 0.001);
    const li = document.createElement("li");
    li.className = "turn";
    const total = typeof turn.e2e_latency === "number" ? `: ${ms(turn.e2e_latency)} voice to voice` : "";
    li.innerHTML = `<h3></h3><dl></dl>`;
    li.querySelector("h3").textContent = `Turn ${n}${total}`;
    const dl = li.querySelector("dl");
    for (const [key, label, cls] of STAGES) {
      const value = turn[key];
      const row = document.createElement("div");
      row.className = `stage ${cls}`;
      row.innerHTML =
        `<dt></dt><dd><span class="track" aria-hidden="true"><span class="bar"></span></span>` +
        `<span class="num"></span></dd>`;
      row.querySelector("dt").textContent = label;
      const known = typeof value === "number";
      row.querySelector(".num").textContent = known ? ms(value) : "n/a";
      row.querySelector(".bar").style.width = known ? `${Math.max(1, (value / scale) * 100)}%` : "0";
      dl.append(row);
    }
    this.list.prepend(li);
    while (this.list.children.length > MAX_TURNS) this.list.lastElementChild.remove();
    this.empty.hidden = true;
  }

  clear() {
    this.list.replaceChildren();
    this.empty.hidden = false;
    this.userPart = null;
    this.count = 0;
  }
}
