// The server's API as the dashboard uses it: the token (kept in this tab's sessionStorage only), JSON calls with
// `Authorization: Bearer`, URLs with `?token=` for what the browser loads itself (images, the WebSocket), and
// one WebSocket that reconnects.

const kTokenKey = "netdist-token";
export const clientId = "dashboard-" + Math.random().toString(16).slice(2, 14);
let token = sessionStorage.getItem(kTokenKey) || "";

export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem(kTokenKey, value);
  else sessionStorage.removeItem(kTokenKey);
}
export const hasToken = () => token !== "";

// `path` with the token as a query parameter, for <img src> and the WebSocket.
export function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export function viewUrl(image) {
  const q = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder || "", type: image.type || "output" });
  return withToken("/view?" + q.toString());
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? `${e.type}: ${e.message}${e.details ? " (" + e.details + ")" : ""}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// JSON call; resolves to the parsed body (null when empty), rejects with ApiError on a non-2xx answer.
export async function call(path, { method = "GET", body } = {}) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!r.ok) throw new ApiError(r.status, parsed);
  return parsed;
}

// The dashboard's public settings (GET /dashboard/config.json, no token needed): {"auth_required", "cluster"}.
export async function dashboardConfig() {
  const r = await fetch("/dashboard/config.json");
  return r.ok ? r.json() : { auth_required: false };
}

// One WebSocket to /ws with this page's clientId; reconnects after a second when it closes.
// handlers: {open(), close(), message(type, data), preview(blob)}.
export function openSocket(handlers) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const connect = () => {
    const ws = new WebSocket(`${scheme}//${location.host}${withToken("/ws?clientId=" + clientId)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => handlers.open();
    ws.onclose = () => {
      handlers.close();
      setTimeout(connect, 1000);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        const m = JSON.parse(ev.data);
        handlers.message(m.type, m.data);
        return;
      }
      const view = new DataView(ev.data);
      if (ev.data.byteLength < 8 || view.getUint32(0) !== 1) return;  // 1 = preview image
      const type = view.getUint32(4) === 2 ? "image/png" : "image/jpeg";
      handlers.preview(new Blob([ev.data.slice(8)], { type }));
    };
  };
  connect();
}
