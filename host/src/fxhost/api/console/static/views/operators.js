// Operators: plugins loaded and failed (with reasons), health, and the live load and
// render queue read from /metrics every two seconds.
import { api, explain } from "../api.js";
import { clear, fmtBytes, h } from "../dom.js";

// Prometheus text format: {name: [{labels, value}]}, enough for the console's sums.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    (out[m[1]] ||= []).push({ labels, value: Number(m[4]) });
  }
  return out;
}
const total = (metrics, name, filter = () => true) => (metrics[name] || []).filter((s) => filter(s.labels)).reduce((a, s) => a + s.value, 0);

export async function render(main) {
  document.title = "Operators · fxhost";
  const pluginsBody = h("tbody", { id: "plugin-rows" });
  const health = h("dl", { class: "figures", id: "health" });
  const load = h("dl", { class: "figures", id: "load" });
  const problems = h("p", { class: "error", role: "alert" });
  let previous = null;

  async function refreshPlugins() {
    const plugins = await api("api/plugins");
    clear(pluginsBody, plugins.map((p) => h("tr", {},
      h("td", {}, h("strong", {}, p.name), h("div", { class: "hint" }, p.module)),
      h("td", {}, h("span", { class: p.status === "loaded" ? "badge good" : "badge bad" }, p.status)),
      h("td", {}, p.version || "—"),
      h("td", {}, p.source),
      h("td", { class: "num" }, p.load_seconds == null ? "—" : `${(p.load_seconds * 1000).toFixed(p.load_seconds < 0.1 ? 1 : 0)} ms`),
      h("td", {}, p.effects.length ? p.effects.map((e, i) => [i ? ", " : "", h("a", { href: `effects/${e}` }, e)]) : "—"),
      h("td", { class: p.error || p.rejected.length ? "error" : "" }, p.error || "",
        p.rejected.map((r) => h("div", {}, `effect ${r.name} rejected: ${r.reasons.join("; ")}`))))));
  }

  async function refresh() {
    const fig = (label, value, id) => h("div", {}, h("dt", {}, label), h("dd", { id }, value));
    const [live, audio, stats] = await Promise.all([
      api("health").then(() => "up").catch(() => "down"),
      api("api/audio/health", { raw: true }).then((r) => r.json()).catch((e) => e.problem || { status: explain(e) }),
      api("api/audio/statistics").catch(() => null),
    ]);
    clear(health,
      fig("Server", live, "health-live"),
      fig("Status", audio.status || "—", "health-status"),
      fig("Plugins", audio.plugins ? `${audio.plugins.loaded.length} loaded, ${audio.plugins.failed.length} failed` : "—"),
      fig("Effects", audio.plugins?.effects ?? "—"),
      fig("Database", audio.database ? (audio.database.ok ? "ok" : audio.database.detail) : "—"),
      fig("Storage", audio.storage ? (audio.storage.ok ? `ok, ${fmtBytes(audio.storage.free_bytes ?? 0)} free` : audio.storage.detail) : "—"),
      fig("Cache", audio.cache ? `${fmtBytes(audio.cache.bytes)} of ${fmtBytes(audio.cache.max_bytes)}` : "—"),
      stats ? fig("Assets", `${stats.assets.count} (${fmtBytes(stats.assets.bytes)})`) : null,
      stats ? fig("Uptime", `${Math.round(stats.uptime_seconds)} s`) : null);
    try {
      const response = await api("metrics", { raw: true });
      const m = parseMetrics(await response.text());
      const now = { t: performance.now(), audio: total(m, "fxhost_live_audio_seconds_total"), dsp: total(m, "fxhost_live_processing_seconds_total"), misses: total(m, "fxhost_live_block_deadline_misses_total") };
      let dspLoad = "—";
      let realtime = "—";
      if (previous) {
        const dt = (now.t - previous.t) / 1000;
        const audioRate = (now.audio - previous.audio) / dt;
        realtime = `${audioRate.toFixed(2)} × real time`;
        dspLoad = audioRate > 0 ? `${(((now.dsp - previous.dsp) / (now.audio - previous.audio)) * 100).toFixed(1)} % of a core` : "idle";
      }
      previous = now;
      const outcomes = (m.fxhost_renders_total || []).map((s) => `${s.labels.outcome} ${s.value}`).join(", ") || "none yet";
      clear(load,
        fig("Live audio", realtime, "load-realtime"),
        fig("DSP load", dspLoad, "load-dsp"),
        fig("Deadline misses", now.misses, "load-misses"),
        fig("Open streams", total(m, "fxhost_streams"), "load-streams"),
        fig("Render queue", total(m, "fxhost_render_queue_depth"), "load-queue"),
        fig("Renders ended", outcomes, "load-renders"),
        fig("Effect faults", total(m, "fxhost_effect_faults_total"), "load-faults"));
      problems.textContent = "";
    } catch (error) {
      clear(load, h("p", { class: "muted" }, `Metrics: ${explain(error)}`));
    }
  }

  main.append(
    h("h1", {}, "Operators"),
    problems,
    h("section", { class: "panel", "aria-labelledby": "health-title" }, h("h2", { id: "health-title" }, "Health"), health),
    h("section", { class: "panel", "aria-labelledby": "load-title" }, h("h2", { id: "load-title" }, "Load (from /metrics, every 2 s)"), load),
    h("section", { class: "panel", "aria-labelledby": "plugins-title" }, h("h2", { id: "plugins-title" }, "Plugins"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Plugin", "Status", "Version", "From", "Load time", "Effects", "Problems"].map((t) => h("th", { scope: "col" }, t)))),
        pluginsBody))),
  );
  await Promise.all([refreshPlugins().catch((e) => { problems.textContent = explain(e); }), refresh()]);
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  return () => clearInterval(timer);
}
