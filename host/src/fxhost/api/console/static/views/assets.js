// Assets: drag-and-drop upload with progress, browsing by prefix and folders, and an
// asset's page with its pictures, its analysis figures, playback and download.
import { api, blobUrl, explain, openableUrl, upload } from "../api.js";
import { clear, fmtBytes, fmtDb, fmtSeconds, h, toast } from "../dom.js";
import { navigate } from "../app.js";

const ID = /^[0-9a-f]{24,64}$/;

export async function render(main, rest, query) {
  const id = rest.join("/");
  if (id && ID.test(id)) return assetPage(main, id);
  return browse(main, query.get("prefix") || "");
}

function crumbs(prefix) {
  const parts = prefix.split("/").filter(Boolean);
  const links = [h("a", { href: "assets" }, "all")];
  parts.forEach((part, i) => {
    const p = `${parts.slice(0, i + 1).join("/")}/`;
    links.push(" / ", i === parts.length - 1 ? h("span", { "aria-current": "page" }, part) : h("a", { href: `assets?prefix=${encodeURIComponent(p)}` }, part));
  });
  return h("nav", { "aria-label": "Folder", class: "row" }, links);
}

async function browse(main, prefix) {
  document.title = "Assets · fxhost";
  const table = h("tbody", { id: "asset-rows" });
  const more = h("button", { type: "button", hidden: true }, "More");
  const search = h("input", { type: "search", id: "prefix", value: prefix, placeholder: "kit/drums/", autocomplete: "off" });
  let cursor = null;

  async function load(reset) {
    if (reset) { clear(table); cursor = null; }
    const page = await api("api/assets", { query: { prefix, delimiter: "/", limit: 100, cursor } });
    for (const folder of page.prefixes) {
      table.append(h("tr", {}, h("td", { colspan: 6 }, h("span", { class: "badge" }, "folder"), " ", h("a", { href: `assets?prefix=${encodeURIComponent(folder)}` }, folder.slice(prefix.length)))));
    }
    for (const a of page.items) {
      table.append(h("tr", {},
        h("td", {}, h("a", { href: `assets/${a.id}` }, a.name.slice(prefix.length))),
        h("td", {}, a.kind),
        h("td", {}, fmtSeconds(a.duration)),
        h("td", {}, `${a.sample_rate} Hz, ${a.channels} ch`),
        h("td", {}, `${a.format} ${a.subtype}`),
        h("td", {}, fmtBytes(a.size))));
    }
    if (!table.children.length) table.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, prefix ? "Nothing in this folder." : "No assets yet: drop audio files above.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => load(false).catch((e) => toast(explain(e))));

  const fileInput = h("input", { type: "file", id: "upload-files", multiple: true, accept: "audio/*" });
  const folderInput = h("input", { id: "upload-folder", value: prefix, placeholder: "e.g. sessions/monday/", autocomplete: "off" });
  const uploads = h("ul", { class: "uploads", id: "uploads", "aria-live": "polite" });
  const drop = h("div", { class: "drop", id: "drop" },
    h("p", {}, "Drop audio files here, or"),
    h("label", { for: "upload-files", class: "button primary" }, "Choose files…"), fileInput,
    h("p", { class: "hint" }, "WAV, FLAC, OGG, Opus, MP3, AIFF, M4A… recognised by content."));
  fileInput.className = "visually-hidden";
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); send([...e.dataTransfer.files]); });
  fileInput.addEventListener("change", () => { send([...fileInput.files]); fileInput.value = ""; });

  async function send(files) {
    let folder = folderInput.value.trim();
    if (folder && !folder.endsWith("/")) folder += "/";
    await Promise.all(files.map(async (file) => {
      const bar = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
      const note = h("span", { class: "muted" }, "uploading…");
      const item = h("li", {}, h("div", { class: "spread" }, h("span", {}, file.name), note), bar);
      uploads.prepend(item);
      try {
        const asset = await upload(file, folder + file.name, (f) => { bar.value = f; });
        bar.value = 1;
        clear(note, h("a", { href: `assets/${asset.id}`, class: "ok" }, `stored: ${fmtSeconds(asset.duration)}, ${asset.sample_rate} Hz`));
      } catch (error) {
        note.className = "error";
        note.textContent = explain(error);
      }
    }));
    await load(true);
  }

  main.append(
    h("h1", {}, "Assets"),
    h("section", { class: "panel", "aria-labelledby": "upload-title" },
      h("h2", { id: "upload-title" }, "Upload"),
      h("div", { class: "field" }, h("label", { for: "upload-folder" }, "Into folder"), folderInput),
      drop, uploads),
    h("section", { class: "panel", "aria-labelledby": "browse-title" },
      h("div", { class: "spread" }, h("h2", { id: "browse-title" }, "Browse"), crumbs(prefix)),
      h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); navigate(`assets?prefix=${encodeURIComponent(search.value)}`); } },
        h("label", { for: "prefix" }, "Name starts with"), search, h("button", { type: "submit" }, "Show")),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Name", "Kind", "Length", "Rate", "Format", "Size"].map((t) => h("th", { scope: "col" }, t)))),
        table)),
      more),
  );
  await load(true);
}

async function assetPage(main, id) {
  const asset = await api(`api/assets/${id}`);
  document.title = `${asset.name} · fxhost`;
  const folder = asset.name.includes("/") ? asset.name.slice(0, asset.name.lastIndexOf("/") + 1) : "";
  const figures = h("dl", { class: "figures", id: "analysis" }, h("div", {}, h("dt", {}, "Analysis"), h("dd", {}, "measuring…")));
  const waveform = h("img", { class: "picture", alt: `Waveform of ${asset.name}`, id: "waveform", width: 1200, height: 400 });
  const spectrogram = h("img", { class: "picture", alt: `Spectrogram of ${asset.name}`, id: "spectrogram", width: 1200, height: 400 });
  const audio = h("audio", { controls: true, preload: "none", "aria-label": `Play ${asset.name}` });
  const download = h("a", { class: "button", download: asset.name.split("/").pop(), id: "download" }, "Download");
  const problems = h("p", { class: "error", role: "alert" });
  const urls = [];

  main.append(
    h("p", {}, h("a", { href: folder ? `assets?prefix=${encodeURIComponent(folder)}` : "assets" }, `← ${folder || "All assets"}`)),
    h("h1", {}, asset.name),
    h("p", { class: "muted" }, `${asset.kind}, ${asset.format} ${asset.subtype}, ${asset.sample_rate} Hz, ${asset.channels} ch, ${fmtSeconds(asset.duration)}, ${fmtBytes(asset.size)}`),
    h("div", { class: "row" }, audio, download,
      h("a", { class: "button", href: `renders?asset=${asset.id}` }, "Render through a chain…"),
      h("button", { type: "button", onclick: remove }, "Delete")),
    problems,
    h("section", { class: "panel", "aria-labelledby": "analysis-title" }, h("h2", { id: "analysis-title" }, "Analysis"), figures),
    h("section", { class: "panel", "aria-labelledby": "pictures-title" }, h("h2", { id: "pictures-title" }, "Pictures"),
      h("div", { class: "pictures" }, waveform, spectrogram)),
  );

  async function remove() {
    if (!confirm(`Delete ${asset.name}?`)) return;
    try {
      await api(`api/assets/${id}`, { method: "DELETE" });
      toast(`Deleted ${asset.name}.`);
      navigate(folder ? `assets?prefix=${encodeURIComponent(folder)}` : "assets", { replace: true });
    } catch (error) { problems.textContent = explain(error); }
  }

  openableUrl("download", id).then((u) => { download.href = u; audio.src = u; }).catch((e) => { problems.textContent = explain(e); });
  for (const [img, name] of [[waveform, "waveform.png"], [spectrogram, "spectrogram.png"]]) {
    blobUrl(`api/assets/${id}/${name}`, { width: 1200 }).then((u) => { urls.push(u); img.src = u; })
      .catch((e) => { img.replaceWith(h("p", { class: "error" }, `${name}: ${explain(e)}`)); });
  }
  api(`api/assets/${id}/analysis`).then((a) => {
    const o = a.overall;
    const fig = (label, value) => h("div", {}, h("dt", {}, label), h("dd", {}, value));
    clear(figures,
      fig("Integrated loudness", a.integrated_lufs == null ? "— (too short)" : fmtDb(a.integrated_lufs, "LUFS")),
      fig("True peak", fmtDb(a.true_peak_dbtp, "dBTP")),
      fig("Sample peak", fmtDb(o.peak_dbfs, "dBFS")),
      fig("RMS", fmtDb(o.rms_dbfs, "dBFS")),
      fig("Loudness range", a.loudness_range_lu == null ? "—" : `${a.loudness_range_lu.toFixed(1)} LU`),
      fig("Clipped samples", `${o.clipped_samples}${o.clip_runs ? ` in ${o.clip_runs} runs` : ""}`),
      fig("DC offset", o.dc_offset.toExponential(1)));
  }).catch((e) => clear(figures, h("p", { class: "error" }, explain(e))));
  return () => urls.forEach((u) => URL.revokeObjectURL(u));
}
