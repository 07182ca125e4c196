// The API client: every request carries the key of this tab (if one was given); errors
// are the server's problem+json, kept whole so that views can show each on its field.
const KEY = "fxhost.key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  document.dispatchEvent(new CustomEvent("fxhost:key"));
}

export function url(path, query = {}) {
  const u = new URL(path, document.baseURI);
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  return u;
}

export function wsUrl(path, query = {}) {
  const u = url(path, query);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = problem.errors || [];
  }
}

function authHeaders(headers = {}) {
  const key = getKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : { ...headers };
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, detail: `HTTP ${response.status} ${response.statusText}` };
  }
}

// Asks for a key: app.js opens its dialog.
function needKey(problem) {
  document.dispatchEvent(new CustomEvent("fxhost:need-key", { detail: problem }));
}

export async function api(path, { method = "GET", query, json, body, headers, raw = false } = {}) {
  headers = authHeaders(headers);
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers["content-type"] = "application/json";
  }
  const response = await fetch(url(path, query), { method, body, headers });
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) needKey(problem);
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response;
}

// A URL the browser can open without headers (EventSource, <a download>, <audio src>):
// the plain URL on an open server, else a signed link of POST /api/links.
export async function openableUrl(action, id, query = {}) {
  const paths = { download: `api/assets/${id}/audio`, events: `api/renders/${id}/events`, stream_output: `api/streams/${id}/output` };
  if (!getKey()) return url(paths[action], query).href;
  const noun = { download: "asset", events: "render", stream_output: "stream" }[action];
  const link = await api("api/links", { method: "POST", json: { action, [noun]: id } });
  const u = new URL(link.url.replace(/^\//, ""), document.baseURI);
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  return u.href;
}

// A picture or audio that needs the key: fetched with it, handed over as an object URL.
export async function blobUrl(path, query = {}) {
  const response = await api(path, { query, raw: true });
  return URL.createObjectURL(await response.blob());
}

// An upload with progress (fetch reports none for request bodies): the raw body, named.
export function upload(file, name, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url("api/assets", { name }));
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let data;
      try { data = JSON.parse(xhr.responseText); } catch { data = { detail: `HTTP ${xhr.status}` }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else {
        if (xhr.status === 401) needKey(data);
        reject(new ApiError(xhr.status, data));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { detail: "the upload was cut off (network error)" }));
    xhr.send(file);
  });
}

// A WebSocket to the server; with a key, the auth message goes first (browsers cannot
// send an Authorization header on a WebSocket).
export function openSocket(path, query = {}) {
  const ws = new WebSocket(wsUrl(path, query));
  ws.binaryType = "arraybuffer";
  const key = getKey();
  if (key) ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token: key })), { once: true });
  return ws;
}

export function explain(error) {
  if (error instanceof ApiError) {
    const p = error.problem;
    return p.detail ? `${p.title || "Error"}: ${p.detail}` : p.title || error.message;
  }
  return error && error.message ? error.message : String(error);
}

// Cached listings shared by views.
let effectsPromise = null;
export function effects() {
  effectsPromise ??= api("api/effects").catch((e) => { effectsPromise = null; throw e; });
  return effectsPromise;
}

export async function allAssets(limit = 500) {
  const page = await api("api/assets", { query: { limit } });
  return page.items;
}
