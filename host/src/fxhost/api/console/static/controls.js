// Controls generated from an effect's parameter JSON Schema: a slider (log where the
// schema's x-scale says so) with its unit and the value as a number, a select for an
// enum, a switch for a boolean, an asset picker for an x-asset string.
import { h, humanise, uid } from "./dom.js";

const STEPS = 1000;

// For a log slider the lower end must be above zero: a schema's exclusive 0 (written
// as the smallest float) starts four decades under the maximum instead.
function logRange(min, max) {
  const lo = min > 0 && min >= max * 1e-6 ? min : max * 1e-4;
  return [lo, max];
}

function decimals(min, max) {
  const span = Math.abs(max - min);
  if (span >= 1000) return 0;
  if (span >= 10) return 1;
  if (span >= 1) return 2;
  return 3;
}

function numberControl(name, schema, value, onChange, path) {
  const id = uid("p");
  const min = schema.minimum ?? schema.exclusiveMinimum ?? 0;
  const max = schema.maximum ?? schema.exclusiveMaximum ?? 1;
  const isLog = schema["x-scale"] === "log";
  const integer = schema.type === "integer";
  const [lo, hi] = isLog ? logRange(min, max) : [min, max];
  const toPos = (v) => (isLog ? (STEPS * Math.log(Math.max(v, lo) / lo)) / Math.log(hi / lo) : v);
  const fromPos = (p) => (isLog ? lo * (hi / lo) ** (p / STEPS) : p);
  const round = (v) => (integer ? Math.round(v) : Number(v.toPrecision(6)));
  const unit = schema["x-unit"] && schema["x-unit"] !== "ratio" ? schema["x-unit"] : "";
  const slider = h("input", {
    type: "range",
    id: `${id}-range`,
    min: isLog ? 0 : lo,
    max: isLog ? STEPS : hi,
    step: isLog ? 1 : integer ? 1 : (hi - lo) / STEPS,
    "aria-labelledby": `${id}-label`,
    "aria-describedby": `${id}-desc ${id}-err`,
    dataset: { param: name, scale: isLog ? "log" : "linear", min: String(min), max: String(max) },
  });
  const number = h("input", {
    type: "number",
    id,
    min,
    max,
    step: integer ? 1 : "any",
    inputmode: "decimal",
    "aria-describedby": `${id}-desc ${id}-err`,
    dataset: { param: name },
  });
  const set = (v) => {
    slider.value = toPos(v);
    number.value = String(integer ? Math.round(v) : Number(Number(v).toFixed(decimals(lo, hi) + 2)));
    slider.setAttribute("aria-valuetext", `${number.value}${unit ? ` ${unit}` : ""}`);
  };
  slider.addEventListener("input", () => {
    const v = round(fromPos(Number(slider.value)));
    set(v);
    onChange(name, v);
  });
  number.addEventListener("change", () => {
    const v = Number(number.value);
    if (number.value === "" || !Number.isFinite(v)) return;
    slider.value = toPos(v);
    onChange(name, integer ? Math.round(v) : v);
  });
  set(value);
  const el = h(
    "div",
    { class: "control", dataset: { path } },
    h("label", { id: `${id}-label`, for: id }, humanise(name), unit ? h("span", { class: "unit" }, ` (${unit})`) : null),
    h("div", { class: "slider-row" }, slider, number),
    h("p", { id: `${id}-desc`, class: "hint" }, schema.description || "", ` Range ${min === lo ? min : ">0"}…${max}${unit ? ` ${unit}` : ""}${isLog ? ", log scale" : ""}.`),
    h("p", { id: `${id}-err`, class: "field-error", role: "alert" }),
  );
  return { el, get: () => Number(number.value), set };
}

function choiceControl(name, schema, value, onChange, path) {
  const id = uid("p");
  const select = h("select", { id, "aria-describedby": `${id}-desc ${id}-err`, dataset: { param: name } },
    schema.enum.map((v) => h("option", { value: v }, String(v))));
  select.value = value;
  select.addEventListener("change", () => onChange(name, select.value));
  const el = h("div", { class: "control", dataset: { path } },
    h("label", { for: id }, humanise(name)), select,
    h("p", { id: `${id}-desc`, class: "hint" }, schema.description || ""),
    h("p", { id: `${id}-err`, class: "field-error", role: "alert" }));
  return { el, get: () => select.value, set: (v) => { select.value = v; } };
}

function switchControl(name, schema, value, onChange, path) {
  const id = uid("p");
  const box = h("input", { type: "checkbox", role: "switch", id, "aria-describedby": `${id}-desc ${id}-err`, dataset: { param: name } });
  box.checked = Boolean(value);
  box.addEventListener("change", () => onChange(name, box.checked));
  const el = h("div", { class: "control switch", dataset: { path } },
    h("label", { for: id }, box, " ", humanise(name)),
    h("p", { id: `${id}-desc`, class: "hint" }, schema.description || ""),
    h("p", { id: `${id}-err`, class: "field-error", role: "alert" }));
  return { el, get: () => box.checked, set: (v) => { box.checked = Boolean(v); } };
}

function assetControl(name, schema, value, onChange, path, assets) {
  const id = uid("p");
  const select = h("select", { id, "aria-describedby": `${id}-desc ${id}-err`, dataset: { param: name } },
    h("option", { value: "" }, "none"),
    (assets || []).map((a) => h("option", { value: a.id }, a.name)));
  if (value && ![...select.options].some((o) => o.value === value)) select.append(h("option", { value }, value));
  select.value = value || "";
  select.addEventListener("change", () => onChange(name, select.value));
  const el = h("div", { class: "control", dataset: { path } },
    h("label", { for: id }, humanise(name), h("span", { class: "unit" }, " (asset)")), select,
    h("p", { id: `${id}-desc`, class: "hint" }, schema.description || ""),
    h("p", { id: `${id}-err`, class: "field-error", role: "alert" }));
  return { el, get: () => select.value, set: (v) => { select.value = v || ""; } };
}

function textControl(name, schema, value, onChange, path) {
  const id = uid("p");
  const input = h("input", { type: "text", id, value: value ?? "", dataset: { param: name } });
  input.addEventListener("change", () => onChange(name, input.value));
  const el = h("div", { class: "control", dataset: { path } },
    h("label", { for: id }, humanise(name)), input,
    h("p", { class: "hint" }, schema.description || ""),
    h("p", { class: "field-error", role: "alert" }));
  return { el, get: () => input.value, set: (v) => { input.value = v ?? ""; } };
}

export function defaults(schema) {
  const out = {};
  for (const [name, prop] of Object.entries(schema.properties || {})) if ("default" in prop) out[name] = prop.default;
  return out;
}

// A form of every parameter. onChange(name, value, allValues); pathPrefix names the
// fields as the server's errors do ("steps[1].params").
export function paramsForm(schema, values, onChange, { pathPrefix = "", assets = [] } = {}) {
  const current = { ...defaults(schema), ...values };
  const controls = {};
  const changed = (name, value) => {
    current[name] = value;
    onChange(name, value, { ...current });
  };
  const el = h("div", { class: "params" });
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const path = pathPrefix ? `${pathPrefix}.${name}` : name;
    let control;
    if (prop.enum) control = choiceControl(name, prop, current[name], changed, path);
    else if (prop.type === "boolean") control = switchControl(name, prop, current[name], changed, path);
    else if (prop.type === "number" || prop.type === "integer") control = numberControl(name, prop, current[name], changed, path);
    else if (prop["x-asset"]) control = assetControl(name, prop, current[name], changed, path, assets);
    else control = textControl(name, prop, current[name], changed, path);
    controls[name] = control;
    el.append(control.el);
  }
  if (!Object.keys(controls).length) el.append(h("p", { class: "muted" }, "This effect has no parameters."));
  return {
    el,
    values: () => ({ ...current }),
    setValues(values) {
      Object.assign(current, defaults(schema), values);
      for (const [name, control] of Object.entries(controls)) control.set(current[name]);
    },
  };
}

// Shows a problem's errors on the fields they name (data-path), and returns those that
// name no field on the page, to be shown beside the form.
export function showFieldErrors(root, errors, mapPath = (p) => p) {
  for (const el of root.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const unplaced = [];
  for (const error of errors) {
    const path = mapPath(error.path || "");
    let field = path ? root.querySelector(`[data-path="${CSS.escape(path)}"]`) : null;
    // steps[1].params.x with no such control: the step itself, then the form.
    let p = path;
    while (!field && p.includes(".")) {
      p = p.slice(0, p.lastIndexOf("."));
      field = root.querySelector(`[data-path="${CSS.escape(p)}"]`);
    }
    if (!field) { unplaced.push(error); continue; }
    const slot = field.querySelector(":scope > .field-error");
    if (slot) slot.textContent = error.message;
    for (const input of field.querySelectorAll(":scope input, :scope select")) input.setAttribute("aria-invalid", "true");
    field.scrollIntoView({ block: "nearest" });
  }
  return unplaced;
}
