// The MLflow REST API as the UI speaks it. Every URL is relative (no leading "/"), so the page
// works under any proxy prefix; hash routing keeps the document URL at the prefix root.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

type Listener = () => void;
const unauthorizedListeners: Listener[] = [];
export function onUnauthorized(fn: Listener): void {
  unauthorizedListeners.push(fn);
}

let inflight = 0;
const busyListeners: ((n: number) => void)[] = [];
export function onBusy(fn: (n: number) => void): void {
  busyListeners.push(fn);
}
function busy(delta: number): void {
  inflight += delta;
  for (const f of busyListeners) f(inflight);
}

export type Params = Record<string, string | number | boolean | undefined | (string | number)[]>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, String(x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function request(url: string, init: RequestInit): Promise<unknown> {
  busy(1);
  let resp: Response;
  try {
    resp = await fetch(url, { credentials: "same-origin", ...init });
  } catch (e) {
    throw new ApiError(`Cannot reach the labtrack server (${String(e)})`, 0, "NETWORK");
  } finally {
    busy(-1);
  }
  const text = await resp.text();
  let body: unknown = {};
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  if (resp.status === 401) {
    for (const f of unauthorizedListeners) f();
  }
  if (!resp.ok) {
    const b = (body ?? {}) as { message?: string; error_code?: string };
    throw new ApiError(
      b.message || `${resp.status} ${resp.statusText || "error"}`,
      resp.status,
      b.error_code || String(resp.status),
    );
  }
  if (body === undefined) throw new ApiError("The server answered with something that is not JSON", resp.status, "BAD_RESPONSE");
  return body;
}

/** GET ajax-api/2.0/mlflow/<path>. */
export function mlGet<T>(path: string, params: Params = {}): Promise<T> {
  return request(`ajax-api/2.0/mlflow/${path}${query(params)}`, { method: "GET" }) as Promise<T>;
}

/** POST ajax-api/2.0/mlflow/<path> with a JSON body (mutations must be JSON). */
export function mlPost<T>(path: string, body: unknown): Promise<T> {
  return request(`ajax-api/2.0/mlflow/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }) as Promise<T>;
}

/** PATCH or DELETE ajax-api/2.0/mlflow/<path> with a JSON body (the registry's update and delete calls). */
export function mlSend<T>(method: "PATCH" | "DELETE" | "POST", path: string, body: unknown): Promise<T> {
  return request(`ajax-api/2.0/mlflow/${path}`, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }) as Promise<T>;
}

/** GET api/2.0/labtrack/<path>: labtrack's own endpoints. */
export function ltGet<T>(path: string, params: Params = {}): Promise<T> {
  return request(`api/2.0/labtrack/${path}${query(params)}`, { method: "GET" }) as Promise<T>;
}

/** POST api/2.0/labtrack/<path> with a JSON body. */
export function ltPost<T>(path: string, body: unknown): Promise<T> {
  return request(`api/2.0/labtrack/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }) as Promise<T>;
}

export function getJSON<T>(url: string): Promise<T> {
  return request(url, { method: "GET" }) as Promise<T>;
}

export async function getText(url: string, maxBytes: number): Promise<{ text: string; truncated: boolean }> {
  busy(1);
  try {
    const resp = await fetch(url, { credentials: "same-origin" });
    if (resp.status === 401) for (const f of unauthorizedListeners) f();
    if (!resp.ok) throw new ApiError(`${resp.status} ${resp.statusText}`, resp.status, String(resp.status));
    // Read only the head of a large file: stop the stream once maxBytes arrived.
    const chunks: Uint8Array[] = [];
    let got = 0;
    let truncated = false;
    const reader = resp.body?.getReader();
    if (reader) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        got += value.byteLength;
        if (got > maxBytes) {
          truncated = true;
          await reader.cancel();
          break;
        }
      }
    }
    const all = new Uint8Array(Math.min(got, maxBytes));
    let off = 0;
    for (const c of chunks) {
      const n = Math.min(c.byteLength, all.byteLength - off);
      all.set(c.subarray(0, n), off);
      off += n;
      if (off >= all.byteLength) break;
    }
    return { text: new TextDecoder().decode(all), truncated };
  } finally {
    busy(-1);
  }
}
