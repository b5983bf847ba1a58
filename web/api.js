// What every page of the dashboard shares: the credentials, requests to the HTTP API with
// errors made readable, WebSocket URLs, and small DOM and number helpers.
//
// Credentials: a server started with --http-token, --http-basic-auth or --jwks-file answers
// the API only with them. A 401 shows a login form: a user's name and password (HTTP basic,
// checked against the users of `runnel user`) or a token (the --http-token, or a JWT). The
// page keeps the resulting `Authorization` value for the tab (sessionStorage), sends it as
// that header on requests and as `authorization=` on WebSockets, which cannot carry headers.
// Opening the dashboard as http://HOST:PORT/?access_token=TOKEN logs in with the token and
// removes it from the address bar.

const AUTH_KEY = "runnel.authorization";

(function takeTokenFromUrl() {
  const q = new URLSearchParams(location.search);
  const t = q.get("access_token");
  if (t != null) {
    setToken(t);
    q.delete("access_token");
    const rest = q.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
})();

/** The `Authorization` value the page sends ("" when it has none). */
export function authorization() {
  return sessionStorage.getItem(AUTH_KEY) || "";
}

/** Logs in with a bearer token (the server's --http-token or a JWT); "" logs out. */
export function setToken(t) {
  if (t) sessionStorage.setItem(AUTH_KEY, `Bearer ${t}`);
  else sessionStorage.removeItem(AUTH_KEY);
}

/** Logs in with a user's name and password (HTTP basic). */
export function setLogin(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  sessionStorage.setItem(AUTH_KEY, `Basic ${btoa(String.fromCharCode(...bytes))}`);
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
/** Calls `fn` when a request is refused for want of (valid) credentials. */
export function onUnauthorized(fn) {
  authListeners.push(fn);
}

/** Fetches an API path with the credentials; JSON answers are parsed. Throws ApiError or a network error. */
export async function api(path, { method = "GET", body, type, keepalive = false } = {}) {
  const headers = {};
  if (authorization()) headers.Authorization = authorization();
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = type || "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  // credentials "omit": the page sends its own Authorization header; a 401 with a Basic
  // challenge must come back to the page (which shows its login form) rather than make the
  // browser open its own password dialog, which it does for requests that carry credentials.
  const res = await fetch(path, { method, headers, body: payload, cache: "no-store", keepalive, credentials: "omit" });
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

/** The WebSocket URL of the API (`/v1/ws`), with the credentials in the query. */
export function wsUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const a = authorization();
  return `${proto}//${location.host}/v1/ws${a ? `?authorization=${encodeURIComponent(a)}` : ""}`;
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
