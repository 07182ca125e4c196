// Renders: an asset through a chain, followed live (server-sent events), then the
// result to play and download. The renders of this tab are remembered for the session.
import { allAssets, api, explain, openableUrl } from "../api.js";
import { clear, fmtDb, fmtSeconds, h } from "../dom.js";
import { navigate } from "../app.js";

const MINE = "fxhost.renders";
const mine = () => JSON.parse(sessionStorage.getItem(MINE) || "[]");
const remember = (id) => sessionStorage.setItem(MINE, JSON.stringify([id, ...mine().filter((r) => r !== id)].slice(0, 30)));

export async function render(main, [renderId], query) {
  document.title = "Renders · fxhost";
  const [assets, chains] = await Promise.all([allAssets(), api("api/chains")]);
  const sources = [];
  const assetSelect = h("select", { id: "render-asset", required: true },
    assets.length ? null : h("option", { value: "" }, "no assets: upload one first"),
    assets.map((a) => h("option", { value: a.id }, a.name)));
  if (query.get("asset")) assetSelect.value = query.get("asset");
  const chainSelect = h("select", { id: "render-chain" }, chains.map((c) => h("option", { value: c.name }, `${c.name}${c.source === "config" ? " (plugins.toml)" : ""}`)));
  const format = h("select", { id: "render-format" }, ["wav", "flac", "ogg", "mp3", "aiff"].map((f) => h("option", { value: f }, f)));
  const tail = h("input", { type: "checkbox", id: "render-tail", checked: true });
  const ceiling = h("input", { type: "number", id: "render-ceiling", min: -60, max: 0, step: 0.1, placeholder: "none" });
  const formProblems = h("p", { class: "error", role: "alert", id: "render-problems" });
  const current = h("section", { class: "panel", id: "render-current", "aria-labelledby": "current-title", hidden: true });
  const history = h("ul", { class: "list-plain", id: "render-history" });

  async function submit(event) {
    event.preventDefault();
    formProblems.textContent = "";
    const output = { format: format.value };
    if (ceiling.value !== "") output.ceiling_dbfs = Number(ceiling.value);
    try {
      const r = await api("api/renders", { method: "POST", json: { asset: assetSelect.value, chain: chainSelect.value, output, tail: tail.checked } });
      remember(r.id);
      navigate(`renders/${r.id}`);
    } catch (error) {
      formProblems.textContent = error.errors?.length ? error.errors.map((e) => `${e.path}: ${e.message}`).join("; ") : explain(error);
    }
  }

  function show(view) {
    const bar = current.querySelector("progress");
    const status = current.querySelector("#render-status");
    bar.value = view.progress;
    bar.setAttribute("aria-valuetext", `${Math.round(view.progress * 100)} %`);
    status.dataset.status = view.status;
    const slot = current.querySelector("#render-result");
    const ended = ["done", "failed", "cancelled"].includes(view.status);
    const cancel = current.querySelector("#render-cancel");
    if (cancel) cancel.hidden = ended;
    if (ended && !status.dataset.listed) { status.dataset.listed = "true"; drawHistory(); }
    if (view.status === "done") {
      status.textContent = `Done: ${view.result.name}, ${fmtSeconds(view.result.duration)}, peak ${fmtDb(view.peak_dbfs, "dBFS")}, ${view.clipped_samples} clipped samples.`;
      const link = h("a", { class: "button primary", id: "render-download", download: view.result.name.split("/").pop() }, "Download");
      const audio = h("audio", { controls: true, preload: "none", "aria-label": "Play the result" });
      clear(slot, h("div", { class: "row" }, audio, link, h("a", { href: `assets/${view.result.id}` }, "The result's page (analysis, pictures)")));
      openableUrl("download", view.result.id).then((u) => { link.href = u; audio.src = u; }).catch((e) => { slot.append(h("p", { class: "error" }, explain(e))); });
    } else if (view.status === "failed" || view.status === "cancelled") {
      status.textContent = `${view.status === "failed" ? "Failed" : "Cancelled"}${view.error ? `: ${view.error}` : "."}`;
      status.className = "error";
    } else {
      status.textContent = `${view.status === "queued" ? "Queued" : "Rendering"}: ${Math.round(view.progress * 100)} %`;
    }
  }

  async function follow(id) {
    current.hidden = false;
    clear(current,
      h("h2", { id: "current-title" }, "Render ", h("code", {}, id.slice(0, 8))),
      h("progress", { max: 1, value: 0, id: "render-progress", "aria-label": "Render progress" }),
      h("p", { id: "render-status", role: "status", "aria-live": "polite" }, "Starting…"),
      h("div", { id: "render-result" }),
      h("button", { type: "button", id: "render-cancel", onclick: async () => {
        try { show(await api(`api/renders/${id}/cancel`, { method: "POST" })); } catch (error) { current.querySelector("#render-status").textContent = explain(error); }
      } }, "Cancel"));
    const view = await api(`api/renders/${id}`);
    remember(id);
    // the form shows what this render was made of, ready for another with a change
    if (view.chain.name) chainSelect.value = view.chain.name;
    if ([...assetSelect.options].some((o) => o.value === view.asset)) assetSelect.value = view.asset;
    format.value = view.output.format;
    tail.checked = view.tail;
    show(view);
    if (["done", "failed", "cancelled"].includes(view.status)) return;
    const events = new EventSource(await openableUrl("events", id));
    sources.push(events);
    const bar = current.querySelector("progress");
    const onEvent = (e) => {
      bar.dataset.events = String(Number(bar.dataset.events || 0) + 1);
      const v = JSON.parse(e.data);
      show(v);
      if (e.type !== "progress") events.close();
    };
    for (const type of ["progress", "done", "failed", "cancelled"]) events.addEventListener(type, onEvent);
    events.onerror = () => { if (events.readyState === EventSource.CLOSED) return; events.close(); api(`api/renders/${id}`).then(show).catch(() => {}); };
  }

  async function drawHistory() {
    const ids = mine();
    const items = [];
    for (const id of ids) {
      try {
        const v = await api(`api/renders/${id}`);
        items.push(h("li", { class: "spread" },
          h("a", { href: `renders/${id}` }, `${assets.find((a) => a.id === v.asset)?.name || v.asset} → ${v.chain.name || "steps"}`),
          h("span", { class: v.status === "done" ? "badge good" : v.status === "failed" ? "badge bad" : "badge" }, v.status)));
      } catch { /* gone: deleted, or another key's */ }
    }
    clear(history, items.length ? items : h("li", { class: "muted" }, "No renders in this session yet."));
  }

  main.append(
    h("h1", {}, "Renders"),
    h("div", { class: "two" },
      h("div", {},
        h("section", { class: "panel", "aria-labelledby": "new-render-title" },
          h("h2", { id: "new-render-title" }, "Render an asset through a chain"),
          h("form", { onsubmit: submit, id: "render-form" },
            h("div", { class: "field" }, h("label", { for: "render-asset" }, "Asset"), assetSelect),
            h("div", { class: "field" }, h("label", { for: "render-chain" }, "Chain"), chainSelect),
            h("div", { class: "row" },
              h("label", { for: "render-format" }, "Format"), format,
              h("label", { for: "render-tail" }, tail, " Keep the tail"),
              h("label", { for: "render-ceiling" }, "Ceiling (dBTP)"), ceiling),
            formProblems,
            h("p", {}, h("button", { type: "submit", class: "primary", id: "render-start", disabled: !assets.length }, "Render")))),
        current),
      h("section", { class: "panel", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "This session's renders"), history)),
  );
  if (renderId) await follow(renderId).catch((e) => { current.hidden = false; clear(current, h("p", { class: "error", role: "alert" }, explain(e))); });
  else drawHistory();
  return () => sources.forEach((s) => s.close());
}
