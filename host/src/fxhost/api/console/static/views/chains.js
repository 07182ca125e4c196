// Chains: plugins.toml's (read-only) and saved ones; a builder that adds, reorders,
// removes and bypasses steps, edits their parameters, and shows the server's errors on
// the fields they name.
import { allAssets, api, effects, explain } from "../api.js";
import { paramsForm, showFieldErrors } from "../controls.js";
import { clear, h, toast } from "../dom.js";
import { navigate } from "../app.js";

export async function render(main, [name]) {
  document.title = name ? `${name} · chains · fxhost` : "Chains · fxhost";
  const [chains, all, assets] = await Promise.all([api("api/chains"), effects(), allAssets().catch(() => [])]);
  const existing = name ? chains.find((c) => c.name === name) : null;
  if (name && !existing) {
    main.append(h("p", {}, h("a", { href: "chains" }, "← All chains")), h("h1", {}, "No such chain"),
      h("p", { class: "error", role: "alert" }, `There is no chain named “${name}” (for your key).`));
    return;
  }
  const list = h("ul", { class: "list-plain", id: "chain-list" }, chains.map((c) =>
    h("li", {},
      h("div", { class: "spread" }, h("a", { href: `chains/${encodeURIComponent(c.name)}`, "aria-current": c.name === name ? "page" : false }, c.name),
        h("span", { class: c.source === "config" ? "badge" : "badge good" }, c.source === "config" ? "plugins.toml, read-only" : "saved")),
      h("div", { class: "hint" }, c.steps.map((s) => s.effect).join(" → ") || "no steps"))));
  const builder = h("section", { class: "panel", "aria-labelledby": "builder-title" });
  main.append(
    h("h1", {}, "Chains"),
    h("div", { class: "two" }, builder,
      h("section", { class: "panel", "aria-labelledby": "chains-title" },
        h("div", { class: "spread" }, h("h2", { id: "chains-title" }, "All chains"), h("a", { href: "chains", class: "button" }, "New chain")),
        chains.length ? list : h("p", { class: "muted" }, "No chains yet."))),
  );
  buildChain(builder, existing, all, assets);
}

function buildChain(root, chain, all, assets) {
  const readOnly = chain?.source === "config";
  const byName = Object.fromEntries(all.map((e) => [e.name, e]));
  // Each step: {effect, params, bypass, key}; bypassed steps are left out of what is sent
  // (the API has no bypass), so the server's step indices are mapped back to these.
  let steps = (chain?.steps || []).map((s, i) => ({ effect: s.effect, params: { ...s.params }, preset: s.preset, bypass: false, key: i }));
  let nextKey = steps.length;
  const nameInput = h("input", { id: "chain-name", value: chain?.name || "", required: true, readOnly: Boolean(chain), autocomplete: "off", "aria-describedby": "chain-name-hint chain-name-err" });
  const description = h("input", { id: "chain-description", value: chain?.description || "", "aria-describedby": "chain-description-err" });
  const stepsEl = h("ol", { class: "list-plain", id: "steps", "aria-label": "Steps" });
  const addSelect = h("select", { id: "add-effect" }, all.map((e) => h("option", { value: e.name }, e.name)));
  addSelect.value = "reverb";
  const problems = h("div", { class: "error", role: "alert", id: "chain-problems" });
  const saveButton = h("button", { type: "submit", class: "primary", id: "save-chain" }, chain ? "Save changes" : "Save chain");

  function sentIndex() {
    const map = new Map();
    let n = 0;
    steps.forEach((s, i) => { if (!s.bypass) { map.set(n, i); n += 1; } });
    return map;
  }

  function drawSteps() {
    clear(stepsEl, steps.map((step, i) => {
      const effect = byName[step.effect];
      const path = `steps[${i}]`;
      const form = effect ? paramsForm(effect.params_schema, step.params, (_n, _v, values) => { step.params = values; }, { pathPrefix: `${path}.params`, assets }) : null;
      const bypass = h("input", { type: "checkbox", id: `bypass-${step.key}`, checked: step.bypass, disabled: readOnly });
      bypass.addEventListener("change", () => { step.bypass = bypass.checked; drawSteps(); });
      const move = (delta) => {
        const j = i + delta;
        [steps[i], steps[j]] = [steps[j], steps[i]];
        drawSteps();
        // the focus follows the step; at an end, onto its other move button
        const card = stepsEl.querySelector(`[data-key="${step.key}"]`);
        const same = card.querySelector(`button[data-move="${delta}"]`);
        (same.disabled ? card.querySelector(`button[data-move="${-delta}"]`) : same).focus();
      };
      const presets = Object.keys(effect?.presets || {});
      const presetSelect = presets.length && !readOnly ? h("select", { id: `preset-${step.key}` },
        h("option", { value: "" }, "choose…"), presets.map((p) => h("option", { value: p }, p))) : null;
      presetSelect?.addEventListener("change", () => {
        if (!presetSelect.value) return;
        form.setValues(effect.presets[presetSelect.value]);
        step.params = form.values();
      });
      const fieldset = h("fieldset", { disabled: readOnly, class: "plain" },
        presetSelect ? h("div", { class: "row preset-row" }, h("label", { for: `preset-${step.key}` }, "Load a preset"), presetSelect) : null,
        form ? form.el : h("p", { class: "error" }, `unknown effect ${step.effect}`));
      return h("li", { class: `step${step.bypass ? " bypassed" : ""}`, dataset: { path, key: String(step.key) } },
        h("header", {},
          h("h3", {}, `${i + 1}. `, h("a", { href: `effects/${step.effect}` }, step.effect), step.bypass ? h("span", { class: "badge warn" }, " bypassed") : null),
          h("label", { for: `bypass-${step.key}` }, bypass, " Bypass"),
          h("button", { type: "button", "aria-label": `Move step ${i + 1} up`, disabled: readOnly || i === 0, dataset: { move: "-1" }, onclick: () => move(-1) }, "↑"),
          h("button", { type: "button", "aria-label": `Move step ${i + 1} down`, disabled: readOnly || i === steps.length - 1, dataset: { move: "1" }, onclick: () => move(1) }, "↓"),
          h("button", { type: "button", "aria-label": `Remove step ${i + 1}`, disabled: readOnly, onclick: () => { steps.splice(i, 1); drawSteps(); } }, "Remove")),
        h("p", { class: "field-error", role: "alert" }),
        step.preset ? h("p", { class: "hint" }, `Preset ${step.preset}, with these parameters over it.`) : null,
        fieldset);
    }));
    if (!steps.length) stepsEl.append(h("li", { class: "muted" }, "No steps yet: add an effect below."));
  }

  async function save(event) {
    event.preventDefault();
    problems.textContent = "";
    showFieldErrors(root, []);
    const sent = steps.filter((s) => !s.bypass).map((s) => ({ effect: s.effect, params: s.params, ...(s.preset ? { preset: s.preset } : {}) }));
    const body = { steps: sent, description: description.value };
    try {
      if (chain) await api(`api/chains/${encodeURIComponent(chain.name)}`, { method: "PUT", json: body });
      else await api("api/chains", { method: "POST", json: { name: nameInput.value.trim(), ...body } });
      toast(`Saved chain ${nameInput.value.trim()}.`);
      if (!chain) navigate(`chains/${encodeURIComponent(nameInput.value.trim())}`, { replace: true });
      else navigate(`chains/${encodeURIComponent(chain.name)}`, { replace: true });
    } catch (error) {
      const index = sentIndex();
      const mapPath = (p) => p.replace(/^steps\[(\d+)\]/, (_m, n) => `steps[${index.get(Number(n)) ?? n}]`);
      const rest = showFieldErrors(root, error.errors || [], mapPath);
      if (!error.errors?.length) problems.textContent = explain(error);
      else if (rest.length) problems.textContent = rest.map((e) => `${e.path}: ${e.message}`).join("; ");
      else problems.textContent = `Not saved: ${error.errors.length === 1 ? "one field needs" : `${error.errors.length} fields need`} fixing (shown on ${error.errors.length === 1 ? "it" : "them"}).`;
    }
  }

  async function remove() {
    if (!confirm(`Delete the chain ${chain.name}?`)) return;
    try {
      await api(`api/chains/${encodeURIComponent(chain.name)}`, { method: "DELETE" });
      toast(`Deleted ${chain.name}.`);
      navigate("chains", { replace: true });
    } catch (error) {
      problems.textContent = explain(error);
    }
  }

  const form = h("form", { id: "chain-form", novalidate: true, onsubmit: save },
    h("div", { class: "field", dataset: { path: "name" } },
      h("label", { for: "chain-name" }, "Name"), nameInput,
      h("p", { id: "chain-name-hint", class: "hint" }, chain ? "A chain keeps its name; save a copy under another name from a new chain." : "Letters, digits, - and _; it names the chain in requests."),
      h("p", { id: "chain-name-err", class: "field-error", role: "alert" })),
    h("div", { class: "field", dataset: { path: "description" } },
      h("label", { for: "chain-description" }, "Description"), description, h("p", { id: "chain-description-err", class: "field-error", role: "alert" })),
    h("h3", {}, "Steps"),
    h("div", { dataset: { path: "steps" } }, stepsEl, h("p", { class: "field-error", role: "alert" })),
    readOnly ? null : h("div", { class: "row" }, h("label", { for: "add-effect" }, "Add a step"), addSelect,
      h("button", { type: "button", id: "add-step", onclick: () => {
        const effect = byName[addSelect.value];
        steps.push({ effect: effect.name, params: {}, bypass: false, key: nextKey++ });
        drawSteps();
      } }, "Add")),
    h("p", { class: "hint" }, "Bypassed steps are left out when the chain is saved."),
    problems,
    readOnly ? null : h("div", { class: "row" }, saveButton,
      chain ? h("button", { type: "button", onclick: remove }, "Delete") : null),
  );
  description.readOnly = readOnly;
  clear(root,
    h("h2", { id: "builder-title" }, chain ? chain.name : "New chain"),
    readOnly ? h("p", { class: "badge" }, "Defined in plugins.toml: read-only here. Edit the file, or build a new chain from it.") : null,
    form);
  drawSteps();
}
