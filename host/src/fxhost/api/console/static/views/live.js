// Live: the microphone (or a sound) -> AudioWorklet -> /ws/process -> playback, with the
// round-trip time of each block, level meters, the session's counters, and parameter
// changes sent as `set` while it runs. And listening to a shared stream.
import { api, effects, explain, openSocket } from "../api.js";
import { exampleSound, levelMeter, levels } from "../audio.js";
import { paramsForm } from "../controls.js";
import { clear, h } from "../dom.js";

const BLOCK = 512;
const PREBUFFER = BLOCK * 3;

function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function workletNode(ctx, { capture, channels }) {
  await ctx.audioWorklet.addModule(new URL("console/worklet.js", document.baseURI));
  return new AudioWorkletNode(ctx, "fxhost-live-io", {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [channels],
    processorOptions: { block: BLOCK, channels, capture, prebuffer: PREBUFFER },
  });
}

export async function render(main, _rest, query) {
  document.title = "Live · fxhost";
  const [all, chains, streams] = await Promise.all([effects(), api("api/chains"), api("api/streams").catch(() => [])]);
  const live = all.filter((e) => !e.offline_only);
  const byName = Object.fromEntries(all.map((e) => [e.name, e]));
  const what = h("select", { id: "live-what" },
    h("optgroup", { label: "One effect" }, live.map((e) => h("option", { value: `effect:${e.name}` }, e.name))),
    chains.length ? h("optgroup", { label: "A chain" }, chains.map((c) => h("option", { value: `chain:${c.name}` }, c.name))) : null);
  what.value = `effect:${query.get("effect") || "reverb"}`;
  if (query.get("chain")) what.value = `chain:${query.get("chain")}`;
  const source = h("select", { id: "live-source" },
    h("option", { value: "mic" }, "Microphone"),
    h("option", { value: "example" }, "Built-in example (looped)"),
    h("option", { value: "file" }, "A file from this computer (looped)"));
  const fileInput = h("input", { type: "file", id: "live-file", accept: "audio/*" });
  const fileField = h("div", { class: "field", hidden: true }, h("label", { for: "live-file" }, "Audio file"), fileInput);
  source.addEventListener("change", () => { fileField.hidden = source.value !== "file"; });
  const startButton = h("button", { type: "button", class: "primary", id: "live-start" }, "Start");
  const status = h("p", { id: "live-status", role: "status", "aria-live": "polite", class: "muted" }, "Stopped.");
  const inMeter = levelMeter("Input", "live-in-meter");
  const outMeter = levelMeter("Output", "live-out-meter");
  const stat = (id, label) => h("div", {}, h("dt", {}, label), h("dd", { id }, "—"));
  const stats = h("dl", { class: "stats", id: "live-stats" },
    stat("live-rtt", "Round trip (median)"), stat("live-latency", "Input to output, about"),
    stat("live-blocks", "Blocks"), stat("live-late", "Late blocks (server)"),
    stat("live-underruns", "Underruns (server)"), stat("live-playback-underruns", "Playback underruns (here)"),
    stat("live-queue", "Queued at the server"), stat("live-dsp", "Processing per block"));
  const stepsEl = h("div", { id: "live-steps" });

  let session = null;

  async function start() {
    startButton.disabled = true;
    status.className = "muted";
    status.textContent = "Starting…";
    if (!window.isSecureContext) {
      // AudioWorklet and the microphone exist only on secure pages
      status.className = "error";
      status.textContent = "Live audio needs a secure page: open the console on localhost (127.0.0.1) or over https.";
      startButton.disabled = false;
      session = null;
      return;
    }
    const ctx = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
    const s = { ctx, sentAt: new Map(), rtts: [], frames: 0, stopped: false, timers: [] };
    session = s;
    try {
      await ctx.resume();
      const node = await workletNode(ctx, { capture: true, channels: 2 });
      s.node = node;
      let input;
      if (source.value === "mic") {
        s.media = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
        input = ctx.createMediaStreamSource(s.media);
      } else {
        const buffer = source.value === "example" ? await exampleSound(48000)
          : fileInput.files.length ? await ctx.decodeAudioData(await fileInput.files[0].arrayBuffer()) : null;
        if (!buffer) throw new Error("choose a file first");
        input = ctx.createBufferSource();
        input.buffer = buffer;
        input.loop = true;
        input.start();
      }
      input.connect(node);
      node.connect(ctx.destination);
      s.input = input;

      const [kind, name] = what.value.split(/:(.*)/s);
      const ws = openSocket("ws/process");
      s.ws = ws;
      ws.addEventListener("open", () => ws.send(JSON.stringify({
        type: "start", ...(kind === "chain" ? { chain: name } : { steps: [{ effect: name }] }),
        sample_rate: ctx.sampleRate, channels: 2, format: "f32le", block: BLOCK, indexed: true,
      })));
      ws.addEventListener("close", (event) => {
        if (s.stopped) return;
        status.className = "error";
        status.textContent = `The server closed the session (${event.code}${event.reason ? `: ${event.reason}` : ""}). ${s.lastError || ""}`;
        stop();
      });
      ws.addEventListener("message", (event) => {
        if (typeof event.data === "string") return onText(s, JSON.parse(event.data));
        const view = new DataView(event.data);
        const tag = Number(view.getBigUint64(0, true));
        const sent = s.sentAt.get(tag);
        if (sent !== undefined) {
          s.sentAt.delete(tag);
          s.rtts.push(performance.now() - sent);
          if (s.rtts.length > 200) s.rtts.shift();
        }
        const samples = new Float32Array(event.data.slice(8));
        const { rms } = levels(samples);
        outMeter.push(rms, samples.length / 2 / ctx.sampleRate);
        node.port.postMessage({ type: "play", samples }, [samples.buffer]);
      });
      node.port.onmessage = (event) => {
        const m = event.data;
        if (m.type === "underrun") { document.getElementById("live-playback-underruns").textContent = m.underruns; return; }
        const { rms } = levels(m.samples);
        inMeter.push(rms, BLOCK / ctx.sampleRate);
        if (!s.ready || ws.readyState !== WebSocket.OPEN) return;
        const packet = new ArrayBuffer(8 + m.samples.byteLength);
        new DataView(packet).setBigUint64(0, BigInt(s.frames), true);
        new Float32Array(packet, 8).set(m.samples);
        s.sentAt.set(s.frames, performance.now());
        s.frames += BLOCK;
        ws.send(packet);
      };
      s.timers.push(setInterval(() => {
        if (ws.readyState === WebSocket.OPEN && s.ready) ws.send(JSON.stringify({ type: "stats" }));
        const rtt = median(s.rtts);
        if (rtt != null) {
          document.getElementById("live-rtt").textContent = `${rtt.toFixed(1)} ms`;
          const buffered = ((BLOCK + PREBUFFER) / ctx.sampleRate) * 1000 + (ctx.baseLatency + (ctx.outputLatency || 0)) * 1000;
          document.getElementById("live-latency").textContent = `${(rtt + buffered).toFixed(0)} ms`;
        }
      }, 1000));
      startButton.textContent = "Stop";
      startButton.disabled = false;
    } catch (error) {
      status.className = "error";
      status.textContent = `Could not start: ${explain(error)}`;
      stop();
    }
  }

  function onText(s, m) {
    if (m.type === "ready") {
      s.ready = true;
      status.className = "ok";
      status.textContent = `Live: ${m.steps.map((x) => x.effect).join(" → ")} at ${m.sample_rate} Hz, blocks of ${BLOCK} frames; chain latency ${m.latency} frames.`;
      clear(stepsEl, m.steps.map((step, i) => {
        const effect = byName[step.effect];
        const form = paramsForm(effect.params_schema, step.params, (name, value) => {
          if (s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify({ type: "set", step: i, params: { [name]: value } }));
        }, { pathPrefix: `steps[${i}].params` });
        return h("section", { class: "step", dataset: { step: String(i) } }, h("h3", {}, `${i + 1}. ${step.effect}`), form.el);
      }));
    } else if (m.type === "stats") {
      const set = (id, v) => { document.getElementById(id).textContent = v; };
      set("live-blocks", m.blocks);
      set("live-late", m.late_blocks ?? "—");
      set("live-underruns", m.underruns);
      set("live-queue", m.queue_frames != null ? `${m.queue_frames} frames` : "—");
      if (m.process_seconds != null && m.blocks) set("live-dsp", `${((m.process_seconds / m.blocks) * 1000).toFixed(2)} ms`);
    } else if (m.type === "updated") {
      status.className = "ok";
      status.textContent = `Step ${m.step + 1} updated.`;
    } else if (m.type === "error") {
      s.lastError = m.message;
      status.className = "error";
      status.textContent = m.message;
      if (m.path) {
        const slot = stepsEl.querySelector(`[data-path$="${CSS.escape(m.path.replace(/^params\./, ""))}"] .field-error`);
        if (slot) slot.textContent = m.message;
      }
    }
  }

  function stop() {
    const s = session;
    session = null;
    if (!s) return;
    s.stopped = true;
    s.timers.forEach(clearInterval);
    try { s.ws?.close(); } catch { /* closing */ }
    try { s.input?.stop?.(); } catch { /* not started */ }
    s.media?.getTracks().forEach((t) => t.stop());
    s.ctx.close();
    inMeter.reset();
    outMeter.reset();
    startButton.textContent = "Start";
    startButton.disabled = false;
    if (status.className !== "error") { status.className = "muted"; status.textContent = "Stopped."; }
  }

  startButton.addEventListener("click", () => (session ? stop() : start()));

  // Shared streams: listen to one's output.
  let listening = null;
  const streamStatus = h("p", { role: "status", "aria-live": "polite", class: "muted", id: "stream-status" });
  const streamMeter = levelMeter("Stream", "stream-meter");
  async function listen(stream, button) {
    if (listening) { listening.stop(); if (listening.id === stream.id) { listening = null; return; } }
    const ctx = new AudioContext({ sampleRate: stream.sample_rate });
    const node = await workletNode(ctx, { capture: false, channels: stream.channels });
    node.connect(ctx.destination);
    const ws = openSocket(`ws/streams/${stream.id}/output`);
    let lost = 0;
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        const m = JSON.parse(event.data);
        if (m.type === "overrun") { lost += m.lost; streamStatus.textContent = `Listening; ${lost} frames lost to overruns.`; }
        if (m.type === "error") streamStatus.textContent = m.message;
        return;
      }
      const samples = stream.format === "s16le"
        ? Float32Array.from(new Int16Array(event.data), (v) => v / 32768)
        : new Float32Array(event.data);
      streamMeter.push(levels(samples).rms, samples.length / stream.channels / stream.sample_rate);
      node.port.postMessage({ type: "play", samples }, [samples.buffer]);
    });
    ws.addEventListener("close", (e) => { if (listening?.ws === ws) { streamStatus.textContent = `The stream ended (${e.code}).`; listening.stop(); listening = null; } });
    button.textContent = "Stop listening";
    streamStatus.textContent = `Listening to ${stream.id.slice(0, 8)}…`;
    listening = { id: stream.id, ws, stop() { ws.close(); ctx.close(); button.textContent = "Listen"; streamMeter.reset(); } };
  }
  const streamList = h("ul", { class: "list-plain", id: "stream-list" },
    streams.length ? streams.map((st) => {
      const button = h("button", { type: "button" }, "Listen");
      button.addEventListener("click", () => listen(st, button).catch((e) => { streamStatus.textContent = explain(e); }));
      return h("li", { class: "spread" }, h("span", {}, h("code", {}, st.id.slice(0, 8)), ` ${st.chain || "steps"}, ${st.sample_rate} Hz, ${st.channels} ch`), button);
    }) : h("li", { class: "muted" }, "No shared streams open (POST /api/streams makes one)."));

  main.append(
    h("h1", {}, "Live"),
    h("div", { class: "two" },
      h("section", { class: "panel", "aria-labelledby": "live-title" },
        h("h2", { id: "live-title" }, "Your sound through the server"),
        h("div", { class: "row" },
          h("div", { class: "field" }, h("label", { for: "live-source" }, "Input"), source),
          h("div", { class: "field" }, h("label", { for: "live-what" }, "Effect or chain"), what)),
        fileField,
        h("p", {}, startButton),
        h("p", { class: "hint" }, "Use headphones with the microphone, or the output feeds back into it."),
        status,
        inMeter.el, outMeter.el,
        stats),
      h("section", { class: "panel", "aria-labelledby": "live-params-title" },
        h("h2", { id: "live-params-title" }, "Parameters, changed live"),
        stepsEl,
        h("p", { class: "hint" }, "Each change is sent as a set message; the sound goes on."))),
    h("section", { class: "panel", "aria-labelledby": "streams-title" },
      h("h2", { id: "streams-title" }, "Shared streams"),
      streamList, streamMeter.el, streamStatus),
  );
  clear(stepsEl, h("p", { class: "muted" }, "Start to get the controls of each step."));
  return () => { stop(); listening?.stop(); };
}
