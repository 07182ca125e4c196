// The console's router: each view has its own URL (the host serves index.html for all
// of them), drawn by a module of views/ into <main>.
import { getKey, setKey, explain } from "./api.js";
import { clear, h } from "./dom.js";

const VIEWS = {
  effects: () => import("./views/effects.js"),
  chains: () => import("./views/chains.js"),
  assets: () => import("./views/assets.js"),
  renders: () => import("./views/renders.js"),
  live: () => import("./views/live.js"),
  operators: () => import("./views/operators.js"),
  keys: () => import("./views/keys.js"),
};

const main = document.getElementById("main");
let cleanup = null;

// The path below <base href>: "effects/reverb" -> ["effects", "reverb"].
function segments() {
  const base = new URL(document.baseURI).pathname;
  const rest = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : location.pathname;
  return rest.split("/").filter(Boolean).map(decodeURIComponent);
}

async function route() {
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  const [view = "effects", ...rest] = segments();
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const load = VIEWS[view];
  if (!load) {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "No console view here. ", h("a", { href: "effects" }, "See the effects.")));
    return;
  }
  try {
    const module = await load();
    clear(main);
    cleanup = (await module.render(main, rest, new URLSearchParams(location.search))) || null;
  } catch (error) {
    console.warn(error);
    clear(main, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, explain(error)));
  }
}

export function navigate(path, { replace = false } = {}) {
  const target = new URL(path, document.baseURI);
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  route().then(() => main.focus({ preventScroll: true }));
}

// Same-origin links inside the console route here, without a page load.
document.addEventListener("click", (event) => {
  const a = event.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  const target = new URL(a.href);
  const base = new URL(document.baseURI);
  if (target.origin !== location.origin || !target.pathname.startsWith(base.pathname)) return;
  const first = target.pathname.slice(base.pathname.length).split("/")[0];
  if (first !== "" && !(first in VIEWS)) return; // /docs and the like are real pages
  event.preventDefault();
  navigate(target.pathname + target.search);
});
window.addEventListener("popstate", route);

// The key dialog: opened when a request is refused for want of a key.
const dialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyError = document.getElementById("key-error");
document.addEventListener("fxhost:need-key", (event) => {
  if (dialog.open) return;
  keyError.textContent = getKey() ? `The key was refused: ${event.detail?.detail || "unauthorized"}` : "";
  dialog.showModal();
  keyInput.focus();
});
document.getElementById("key-cancel").addEventListener("click", () => dialog.close());
document.getElementById("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  const previous = getKey();
  sessionStorage.setItem("fxhost.key", key);
  try {
    await fetch(new URL("api/effects", document.baseURI), { headers: { Authorization: `Bearer ${key}` } }).then((r) => {
      if (r.status === 401) throw new Error("the server refused this key");
    });
    setKey(key);
    keyInput.value = "";
    dialog.close();
    route();
  } catch (error) {
    if (previous) sessionStorage.setItem("fxhost.key", previous); else sessionStorage.removeItem("fxhost.key");
    keyError.textContent = explain(error);
  }
});

route();
