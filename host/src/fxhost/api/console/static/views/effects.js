// Effects: the list of every effect, and a page per effect with its controls, presets
// and a player of dry and processed audio (instant A/B, loop region).
import { allAssets, api, effects, explain } from "../api.js";
import { audioContext, encodeWav, exampleSound } from "../audio.js";
import { paramsForm, showFieldErrors } from "../controls.js";
import { clear, h, fmtDb } from "../dom.js";

export async function render(main, [name]) {
  if (name) return effectPage(main, name);
  return effectList(main);
}

const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

async function effectList(main) {
  document.title = "Effects · fxhost";
  const all = await effects();
  const filter = h("input", { type: "search", id: "effect-filter", placeholder: "reverb, filter, pedalboard…" });
  const grid = h("div", { class: "grid", id: "effect-list" });
  const draw = () => {
    const q = filter.value.toLowerCase();
    clear(grid, all.filter((e) => !q || `${e.name} ${e.summary} ${e.plugin}`.toLowerCase().includes(q)).map((e) =>
      h("article", { class: "panel effect-card" },
        h("h2", {}, h("a", { href: `effects/${e.name}` }, e.name)),
        h("p", {}, e.summary),
        h("p", { class: "row" },
          h("span", { class: "badge" }, `${e.plugin} ${e.version}`),
          e.offline_only ? h("span", { class: "badge warn" }, "offline only") : null,
          h("span", { class: "muted" }, count(Object.keys(e.params_schema.properties || {}).length, "parameter"),
            Object.keys(e.presets || {}).length ? `, ${count(Object.keys(e.presets).length, "preset")}` : "")))));
  };
  filter.addEventListener("input", draw);
  main.append(
    h("h1", {}, "Effects"),
    h("nav", { class: "panel start", "aria-label": "Start here" },
      h("a", { class: "button primary", href: "live?effect=reverb" }, "Hear the reverb on your voice"),
      h("a", { class: "button", href: "effects/reverb" }, "Try the reverb on the example sound"),
      h("a", { class: "button", href: "assets" }, "Upload audio")),
    h("p", { class: "muted" }, `${all.length} effects installed. Open one to hear it on the example sound or on your own audio.`),
    h("div", { class: "field" }, h("label", { for: "effect-filter" }, "Filter"), filter),
    grid,
  );
  draw();
}

class Player {
  constructor(onState) {
    this.ctx = audioContext();
    this.dry = null;
    this.wet = null;
    this.mode = "wet";
    this.sources = [];
    this.gains = { dry: this.ctx.createGain(), wet: this.ctx.createGain() };
    this.gains.dry.connect(this.ctx.destination);
    this.gains.wet.connect(this.ctx.destination);
    this.loop = { on: false, start: 0, end: 0 };
    this.playing = false;
    this.onState = () => {};
    this.setMode("wet");
    this.onState = onState;
  }
  position() {
    if (!this.playing) return this.offset || 0;
    const elapsed = this.ctx.currentTime - this.startedAt + this.offset;
    if (this.loop.on && this.loop.end > this.loop.start && elapsed > this.loop.end) {
      return this.loop.start + ((elapsed - this.loop.start) % (this.loop.end - this.loop.start));
    }
    return elapsed;
  }
  play(offset = 0) {
    this.stopSources();
    const at = this.ctx.currentTime + 0.03;
    for (const [kind, buffer] of [["dry", this.dry], ["wet", this.wet]]) {
      if (!buffer) continue;
      const source = this.ctx.createBufferSource();
      source.buffer = buffer;
      if (this.loop.on && this.loop.end > this.loop.start) {
        source.loop = true;
        source.loopStart = this.loop.start;
        source.loopEnd = this.loop.end;
      }
      source.connect(this.gains[kind]);
      source.start(at, Math.min(offset, buffer.duration));
      this.sources.push(source);
    }
    // Without a loop, playing ends with the longer sound (the processed one has the tail).
    const last = this.sources.reduce((a, b) => (b.buffer.duration > a.buffer.duration ? b : a), this.sources[0]);
    if (last && !last.loop) last.onended = () => this.stop();
    this.startedAt = at;
    this.offset = offset;
    this.playing = true;
    this.onState();
  }
  stopSources() {
    for (const s of this.sources) { s.onended = null; try { s.stop(); } catch { /* not started */ } }
    this.sources = [];
  }
  stop() {
    this.offset = 0;
    this.stopSources();
    this.playing = false;
    this.onState();
  }
  // A/B in the same instant: both play all the time, only their gains change (a 5 ms
  // ramp, so that the switch does not click).
  setMode(mode) {
    this.mode = mode;
    const now = this.ctx.currentTime;
    this.gains.dry.gain.setTargetAtTime(mode === "dry" ? 1 : 0, now, 0.005);
    this.gains.wet.gain.setTargetAtTime(mode === "wet" ? 1 : 0, now, 0.005);
    this.onState();
  }
  replace(kind, buffer) {
    this[kind] = buffer;
    if (this.playing) this.play(this.position());
  }
  dispose() {
    this.stopSources();
    this.gains.dry.disconnect();
    this.gains.wet.disconnect();
  }
}

function queryParams(values) {
  const q = {};
  for (const [k, v] of Object.entries(values)) q[k] = typeof v === "boolean" ? String(v) : v;
  return q;
}

async function effectPage(main, name) {
  document.title = `${name} · fxhost`;
  const effect = await api(`api/effects/${encodeURIComponent(name)}`);
  const assets = await allAssets().catch(() => []);
  let processing = null;
  let pending = false;
  let dryBlob = null;
  let sourceLabel = "the example sound";

  const status = h("p", { id: "process-status", class: "muted", role: "status", "aria-live": "polite" }, "");
  const problems = h("p", { class: "error", role: "alert" });
  const form = paramsForm(effect.params_schema, {}, () => schedule(), { assets });

  const presetSelect = h("select", { id: "preset" }, h("option", { value: "" }, "defaults"),
    Object.keys(effect.presets || {}).map((p) => h("option", { value: p }, p)));
  presetSelect.addEventListener("change", () => {
    form.setValues(effect.presets[presetSelect.value] || {});
    schedule();
  });

  const playButton = h("button", { type: "button", class: "primary", id: "play" }, "Play");
  const dryButton = h("button", { type: "button", id: "ab-dry", "aria-pressed": "false" }, "A: dry");
  const wetButton = h("button", { type: "button", id: "ab-wet", "aria-pressed": "true" }, "B: processed");
  const loopBox = h("input", { type: "checkbox", id: "loop" });
  const loopStart = h("input", { type: "number", id: "loop-start", min: 0, step: 0.1, value: 0 });
  const loopEnd = h("input", { type: "number", id: "loop-end", min: 0, step: 0.1, value: 2 });
  const sourceSelect = h("select", { id: "source" },
    h("option", { value: "example" }, "Built-in example (plucks and kick, 4 s)"),
    h("option", { value: "file" }, "A file from this computer…"),
    assets.length ? h("optgroup", { label: "Uploaded assets" }, assets.map((a) => h("option", { value: a.id }, a.name))) : null);
  const fileInput = h("input", { type: "file", id: "source-file", accept: "audio/*", hidden: true });
  const fileLabel = h("label", { for: "source-file", hidden: true }, "Audio file");

  const player = new Player(() => {
    playButton.textContent = player.playing ? "Stop" : "Play";
    dryButton.setAttribute("aria-pressed", String(player.mode === "dry"));
    wetButton.setAttribute("aria-pressed", String(player.mode === "wet"));
  });
  playButton.addEventListener("click", () => (player.playing ? player.stop() : player.play(player.loop.on ? player.loop.start : 0)));
  dryButton.addEventListener("click", () => player.setMode("dry"));
  wetButton.addEventListener("click", () => player.setMode("wet"));
  const setLoop = () => {
    player.loop = { on: loopBox.checked, start: Number(loopStart.value) || 0, end: Number(loopEnd.value) || 0 };
    if (player.playing) player.play(player.loop.on ? player.loop.start : player.position());
  };
  [loopBox, loopStart, loopEnd].forEach((el) => el.addEventListener("change", setLoop));
  // "a" and "b" switch while the page has the focus outside a text field.
  const keys = (event) => {
    if (event.target.matches("input[type=number], input[type=text], input[type=search], select")) return;
    if (event.key === "a") player.setMode("dry");
    if (event.key === "b") player.setMode("wet");
  };
  document.addEventListener("keydown", keys);

  async function loadSource() {
    const ctx = player.ctx;
    const value = sourceSelect.value;
    fileInput.hidden = fileLabel.hidden = value !== "file";
    status.textContent = "Loading the sound…";
    let buffer;
    if (value === "example") {
      buffer = await exampleSound(44100);
      sourceLabel = "the example sound";
    } else if (value === "file") {
      if (!fileInput.files.length) { status.textContent = "Choose a file."; return; }
      buffer = await ctx.decodeAudioData(await fileInput.files[0].arrayBuffer());
      sourceLabel = fileInput.files[0].name;
    } else {
      const response = await api(`api/assets/${value}/audio`, { query: { format: "wav" }, raw: true });
      buffer = await ctx.decodeAudioData(await response.arrayBuffer());
      sourceLabel = sourceSelect.selectedOptions[0].textContent;
    }
    loopEnd.max = loopStart.max = buffer.duration.toFixed(2);
    if (Number(loopEnd.value) > buffer.duration) loopEnd.value = buffer.duration.toFixed(2);
    dryBlob = encodeWav(buffer);
    player.replace("dry", buffer);
    await processNow();
  }
  sourceSelect.addEventListener("change", () => loadSource().catch(fail));
  fileInput.addEventListener("change", () => loadSource().catch(fail));

  function fail(error) {
    status.textContent = "";
    problems.textContent = explain(error);
  }

  // The processed sound from POST /api/process; a change while one is in flight asks
  // for one more after it, never a queue.
  let timer = null;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => processNow().catch(fail), 250);
  }
  async function processNow() {
    if (!dryBlob) return;
    if (processing) { pending = true; return; }
    pending = false;
    status.textContent = `Processing ${sourceLabel}…`;
    problems.textContent = "";
    showFieldErrors(main, []);
    const started = performance.now();
    processing = (async () => {
      try {
        const response = await api("api/process", {
          method: "POST",
          query: { effect: name, ...queryParams(form.values()) },
          body: dryBlob,
          headers: { "content-type": "audio/wav" },
          raw: true,
        });
        const buffer = await player.ctx.decodeAudioData(await response.arrayBuffer());
        player.replace("wet", buffer);
        const peak = Number(response.headers.get("X-Peak-Dbfs"));
        const clipped = Number(response.headers.get("X-Clipped-Samples") || 0);
        status.textContent = `Processed ${sourceLabel} in ${Math.round(performance.now() - started)} ms: ${buffer.duration.toFixed(2)} s with the tail, peak ${fmtDb(peak, "dBFS")}${clipped ? `, ${clipped} clipped samples` : ""}.`;
        status.dataset.ready = "true";
      } catch (error) {
        const rest = showFieldErrors(main, error.errors || []);
        if (!error.errors?.length || rest.length) fail(error);
        else status.textContent = "";
      } finally {
        processing = null;
      }
    })();
    await processing;
    if (pending) await processNow();
  }

  main.append(
    h("p", {}, h("a", { href: "effects" }, "← All effects")),
    h("div", { class: "spread" }, h("h1", {}, effect.name),
      h("span", { class: "row" }, h("span", { class: "badge" }, `${effect.plugin} ${effect.version}`),
        effect.offline_only ? h("span", { class: "badge warn" }, "offline only: renders and /api/process, not live") : null)),
    h("p", {}, effect.summary),
    h("div", { class: "two" },
      h("section", { class: "panel", "aria-labelledby": "params-title" },
        h("div", { class: "spread" }, h("h2", { id: "params-title" }, "Parameters"),
          Object.keys(effect.presets || {}).length ? h("div", { class: "row" }, h("label", { for: "preset" }, "Preset"), presetSelect) : null),
        form.el),
      h("section", { class: "panel", "aria-labelledby": "listen-title" },
        h("h2", { id: "listen-title" }, "Listen"),
        h("div", { class: "field" }, h("label", { for: "source" }, "Sound"), sourceSelect, fileLabel, fileInput),
        h("div", { class: "row", role: "group", "aria-label": "Playback" }, playButton, dryButton, wetButton),
        h("p", { class: "hint" }, "Both play in sync; A/B (or the keys a and b) switches instantly."),
        h("fieldset", {}, h("legend", {}, "Loop region"),
          h("div", { class: "row" },
            h("label", { for: "loop" }, loopBox, " Loop"),
            h("label", { for: "loop-start" }, "from (s)"), loopStart,
            h("label", { for: "loop-end" }, "to (s)"), loopEnd)),
        status, problems,
        effect.offline_only ? null : h("p", {}, h("a", { href: `live?effect=${effect.name}` }, "Try it live on your microphone →")))),
  );
  loadSource().catch(fail);
  return () => {
    clearTimeout(timer);
    document.removeEventListener("keydown", keys);
    player.dispose();
  };
}
