// The API key of this tab: kept in sessionStorage, sent as a bearer header, as the
// first message of each WebSocket, and turned into signed links where no header goes.
import { getKey, setKey } from "../api.js";
import { h } from "../dom.js";

export async function render(main) {
  document.title = "Key · fxhost";
  const probe = await fetch(new URL("api/effects", document.baseURI), { headers: getKey() ? { Authorization: `Bearer ${getKey()}` } : {} });
  const open = !getKey() && probe.ok;
  const state = h("p", { id: "key-state", role: "status" },
    open ? "This server is open: it needs no key." : getKey() ? (probe.ok ? "A key is in use in this tab, and the server accepts it." : "The key of this tab is refused.") : "This server needs a key.");
  const forget = h("button", { type: "button", id: "forget-key", disabled: !getKey(), onclick: () => { setKey(null); render(main.replaceChildren() || main); } }, "Forget the key");
  main.append(
    h("h1", {}, "API key"),
    h("section", { class: "panel" },
      state,
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", id: "enter-key", onclick: () => document.dispatchEvent(new CustomEvent("fxhost:need-key", { detail: {} })) }, getKey() ? "Use another key" : "Enter a key"),
        forget),
      h("p", { class: "hint" }, "The key stays in this browser tab (sessionStorage) and goes only to this server: as Authorization: Bearer on requests, as the auth message that opens each WebSocket, and, where the browser cannot send a header (downloads, audio players, render progress), through a signed link from POST /api/links that works for one resource for an hour.")),
  );
}
