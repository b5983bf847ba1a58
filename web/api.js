// What every page of the dashboard shares: the bearer token, requests to the HTTP API with
// errors made readable, WebSocket URLs, and small DOM and number helpers.
//
// The token: a server started with --http-token answers the API only with it. Open the
// dashboard as http://HOST:PORT/?access_token=TOKEN (the same query parameter the API takes);
// the page keeps it for the tab (sessionStorage), removes it from the address bar, and sends
// it as `Authorization: Bearer` on requests and as `access_token=` on WebSockets. A 401 shows
// a field to enter it.

const TOKEN_KEY = "runnel.token";

(function takeTokenFromUrl() {
  const q = new URLSearchParams(location.search);
  const t = q.get("access_token");
  if (t != null) {
    sessionStorage.setItem(TOKEN_KEY, t);
    q.delete("access_token");
    const rest = q.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
})();

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An API failure: `status`, the problem's `kind` (`invalid-sql`, …), `detail`, and the body. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.kind = (problem.type || "").replace("urn:runnel:problem:", "");
    this.problem = problem;
  }
}

const authListeners = [];
/** Calls `fn` when a request is refused for want of a (valid) token. */
export function onUnauthorized(fn) {
  authListeners.push(fn);
}

/** Fetches an API path with the token; JSON answers are parsed. Throws ApiError or a network error. */
export async function api(path, { method = "GET", body, type, keepalive = false } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = type || "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, cache: "no-store", keepalive });
  const ctype = res.headers.get("Content-Type") || "";
  if (!res.ok) {
    let problem = {};
    if (ctype.includes("json")) problem = await res.json().catch(() => ({}));
    if (res.status === 401) authListeners.forEach((fn) => fn());
    throw new ApiError(res.status, problem);
  }
  if (res.status === 204) return null;
  return ctype.includes("json") ? res.json() : res.text();
}

/** The WebSocket URL of the API (`/v1/ws`), with the token in the query. */
export function wsUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  return `${proto}//${location.host}/v1/ws${t ? `?access_token=${encodeURIComponent(t)}` : ""}`;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function fmtCount(n) {
  return Math.round(n).toLocaleString("en-US");
}

export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtLag(seconds) {
  if (seconds == null) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.round(seconds / 60)} min`;
}

export function fmtTime(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 23);
}

export function replaceRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText))]));
}

/** Shows `text` in the page's error bar (role=alert), or clears it. */
export function showError(host, text) {
  host.textContent = text || "";
  host.hidden = !text;
}

export const PALETTE = ["#2663d9", "#d9822b", "#1a7f37", "#b42fa6", "#c62828", "#0f8b8d", "#7a5cc7", "#8a6d1f"];

/** A record's value as text: JSON pretty-printed, text as is, bytes as base64 (marked). */
export function valueText(r, field = "value", pretty = false) {
  if (r[`${field}_base64`] !== undefined) return `base64:${r[`${field}_base64`]}`;
  const v = r[field];
  if (v == null) return "";
  if (typeof v === "string") {
    if (pretty) {
      try {
        const parsed = JSON.parse(v);
        if (parsed !== null && typeof parsed === "object") return JSON.stringify(parsed, null, 2);
      } catch { /* not JSON: shown as text */ }
    }
    return v;
  }
  return pretty ? JSON.stringify(v, null, 2) : JSON.stringify(v);
}
