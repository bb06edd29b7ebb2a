/**
 * spine.js: follow, read and append to Spine from a web page. One ES module, no dependencies, no
 * build step; Spine serves this very file at `/v1/client.js`.
 *
 *   import { follow, followFlags, append, read, request, SpineError } from "https://spine.example/v1/client.js";
 *
 * `follow` listens with the browser's own EventSource on a stream ticket (an EventSource cannot
 * send an Authorization header). While its ticket is valid the browser reconnects by itself,
 * with Last-Event-ID. Before the ticket expires, `follow` gets a fresh one and only then swaps
 * streams. When a stream is refused (an expired ticket, a 503) or the server stays away until
 * its ticket is spent, `follow` asks `getTicket` again, with capped, jittered backoff. A new
 * stream always starts after the last event delivered, until `close()`. `followFlags` follows the
 * flag changes the same way. `append`, `read` and `request` (any other operation) retry what a
 * restart or an outage explains, and throw every other answer as a `SpineError`.
 */

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
// A ticket that expires within this margin is not worth a browser reconnect: the server would
// refuse it, and a refused EventSource cannot tell why.
const TICKET_MARGIN_MS = 1_000;
// A ticket is renewed when this share of its life is gone, never sooner than the floor (a page
// whose clock runs ahead of Spine's sees every ticket about to expire).
const RENEW_AT = 0.8;
const MIN_RENEW_MS = 1_000;
const ATTEMPTS = 8; // with the backoff, 16 to 32 s: long enough to ride out a restart
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once after any longer delay
// A 503 naming a missing route, a backend the tenant's mode refuses or a secret that cannot be
// read is the deployment's configuration, not an outage: asked again, it answers the same.
const LASTING_503 = /\.missing_route$|^routing\.forbidden_backend$|^secret\./;

/**
 * A problem answered by Spine (RFC 9457), or the server out of reach (`status` 0).
 * `errorCode` is the problem's `error_code` (`spine.version_conflict`, `auth.ticket_expired`…);
 * `retryAfter` is in seconds, when the server said (429, 503).
 */
export class SpineError extends Error {
  /**
   * @param {string} message
   * @param {{status: number, errorCode?: string | null, retryAfter?: number | null,
   *          problem?: Record<string, unknown> | null, cause?: unknown}} details
   */
  constructor(message, { status, errorCode = null, retryAfter = null, problem = null, cause }) {
    super(message, { cause });
    this.name = "SpineError";
    /** @type {number} */ this.status = status;
    /** @type {string | null} */ this.errorCode = errorCode;
    /** @type {number | null} */ this.retryAfter = retryAfter;
    /** @type {Record<string, unknown> | null} */ this.problem = problem;
  }
}

/**
 * @typedef {{position: number, stream: string, type: string, data: unknown, id: string}} SpineEvent
 *   An event as Spine stores it (it carries more fields: `version`, `recorded_at`, `meta`…).
 * @typedef {{key: string, value: unknown, reason: string, version: number, deleted: boolean,
 *            rule: number | null, position: number}} FlagChange
 *   A flag's change, its value evaluated for the ticket's caller; `position` is the frame's id.
 * @typedef {{ticket: string, expires_at: string}} Ticket  What `POST /v1/stream-tickets` answers.
 * @typedef {{close(): void, readonly position: number, readonly tickets: number,
 *            readonly connections: number}} Follower
 *   `position`: the last delivered; `tickets`: fetched so far; `connections`: streams opened,
 *   the browser's own reconnects included.
 */

/**
 * Follow the partition the tickets are for: every event after `after`, then live, for ever.
 *
 * @param {{url: string, getTicket: () => Promise<Ticket>, onEvent: (event: SpineEvent) => void,
 *          after?: number, stream?: string, types?: string[], named?: boolean,
 *          onError?: (error: unknown) => void}} options
 *   `url`: Spine's base URL. `onEvent` gets each event once, in order. `stream`, `types`: only
 *   those. `named`: ask for frames named by their type and listen to each of `types` (by default
 *   frames are unnamed, so one listener hears every type). `onError` hears of each failed
 *   attempt; `follow` carries on regardless.
 * @returns {Follower}
 */
export function follow({ url, getTicket, onEvent, after = 0, stream, types = [], named = false, onError }) {
  if (named && types.length === 0) throw new TypeError("follow: named frames need the `types` to listen to");
  const query = new URLSearchParams();
  if (!named) query.set("named", "false");
  if (stream) query.set("stream", stream);
  for (const type of types) query.append("type", type);
  const decode = (/** @type {MessageEvent<string>} */ message) => {
    const event = /** @type {SpineEvent} */ (JSON.parse(message.data));
    return { position: event.position, item: event };
  };
  return followFrames({ url, getTicket, onItem: onEvent, after, onError, path: "/v1/events/stream", query,
                        names: named ? types : null, decode });
}

/**
 * Follow the flags of the project the tickets are for: every change after `after`, each evaluated
 * for the ticket's caller, then live, for ever; it resumes as `follow` does.
 *
 * @param {{url: string, getTicket: () => Promise<Ticket>, onChange: (change: FlagChange) => void,
 *          after?: number, onError?: (error: unknown) => void}} options
 * @returns {Follower}
 */
export function followFlags({ url, getTicket, onChange, after = 0, onError }) {
  const decode = (/** @type {MessageEvent<string>} */ message) => {
    const position = Number(message.lastEventId); // a flag frame's data has no position: its id is it
    return { position, item: /** @type {FlagChange} */ ({ ...JSON.parse(message.data), position }) };
  };
  return followFrames({ url, getTicket, onItem: onChange, after, onError, path: "/v1/flags/stream",
                        query: new URLSearchParams(), names: ["flag.changed", "flag.deleted"], decode });
}

/**
 * The one resuming follower of `follow` and `followFlags`: tickets, EventSource, backoff.
 *
 * @template T
 * @param {{url: string, getTicket: () => Promise<Ticket>, onItem: (item: T) => void, after: number,
 *          onError?: (error: unknown) => void, path: string, query: URLSearchParams,
 *          names: string[] | null, decode: (message: MessageEvent<string>) => {position: number, item: T}}} options
 *   `names`: the frame names to listen to (null: unnamed frames); `decode`: a frame's position and item.
 * @returns {Follower}
 */
function followFrames({ url, getTicket, onItem, after, onError, path, query: filters, names, decode }) {
  let position = after;
  let tickets = 0;
  let connections = 0;
  let failures = 0; // since a stream last opened: the backoff's exponent
  let closed = false;
  let connecting = false;
  /** @type {EventSource | null} */ let source = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ let timer; // the next connect

  const report = (/** @type {unknown} */ error) => {
    try {
      onError?.(error);
    } catch {
      // the caller's handler must not stop the follower
    }
  };

  const schedule = (/** @type {number} */ ms) => {
    clearTimeout(timer);
    if (!closed) timer = setTimeout(connect, Math.min(ms, MAX_TIMER_MS));
  };

  const retry = () => {
    schedule(failures === 0 ? 0 : backoff(failures));
    failures += 1;
  };

  const deliver = (/** @type {MessageEvent<string>} */ message) => {
    const frame = decode(message);
    if (!(frame.position > position)) return; // a defence: every stream starts after `position`
    position = frame.position;
    onItem(frame.item);
  };

  // A fresh ticket, then a stream on it: the first, a renewal, or a new start after a refusal.
  // A renewal breaks the live stream only once it has the ticket; events the old stream had
  // received but not yet dispatched are lost with it, and sent again by the new one.
  const connect = async () => {
    if (closed || connecting) return;
    connecting = true;
    let ticket;
    try {
      ticket = await getTicket();
      tickets += 1;
    } catch (error) {
      report(error);
      return retry();
    } finally {
      connecting = false;
    }
    if (closed) return;
    source?.close();
    const expiresAt = Date.parse(ticket.expires_at);
    const query = new URLSearchParams({ ticket: ticket.ticket, after: String(position) });
    for (const [name, value] of filters) query.append(name, value);
    const current = new EventSource(`${base(url)}${path}?${query}`);
    source = current;
    if (names) for (const name of names) current.addEventListener(name, deliver);
    else current.onmessage = deliver;
    current.onopen = () => {
      connections += 1;
      failures = 0;
      schedule(Math.max(MIN_RENEW_MS, (expiresAt - Date.now()) * RENEW_AT));
    };
    current.onerror = () => {
      // CONNECTING: the browser retries by itself, with Last-Event-ID, unless its ticket is spent.
      if (current.readyState === EventSource.CONNECTING && expiresAt - Date.now() > TICKET_MARGIN_MS) return;
      current.close();
      if (source !== current) return;
      source = null;
      report(new SpineError("the event stream closed; resuming with a fresh ticket", { status: 0 }));
      retry();
    };
  };

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      source?.close();
      source = null;
    },
    get position() {
      return position;
    },
    get tickets() {
      return tickets;
    },
    get connections() {
      return connections;
    },
  };
}

/**
 * @typedef {{url: string, getToken: (hint?: {refresh: boolean}) => Promise<string>,
 *            project: string, surface: string, app?: string, env?: string}} Caller
 *   Who calls: Spine's base URL, a member token (asked again with `{refresh: true}` after a
 *   401), and the context headers of data routes.
 */

/**
 * Append events to a stream, atomically. Events without an `id` get one, so that a retry (after a
 * network error, a 503 or a 429) appends nothing twice. To retry yourself after it throws, give
 * your events ids.
 *
 * @param {Caller & {stream: string, events: {type: string, data?: unknown, id?: string}[],
 *          expectedVersion?: number | "no_stream" | "any"}} options
 * @returns {Promise<{first_position: number, last_position: number, stream_version: number}>}
 */
export async function append({ stream, events, expectedVersion, ...caller }) {
  /** @type {Record<string, unknown>} */
  const body = { stream, events: events.map((event) => (event.id ? event : { ...event, id: uuid() })) };
  if (expectedVersion !== undefined) body.expected_version = expectedVersion;
  return call(caller, "POST", "/v1/events", body, ATTEMPTS);
}

/**
 * Read the partition by cursor: `{events, next, head}`; read again after `next` while `next < head`.
 * With a `ticket` it needs no token nor context headers.
 *
 * @param {({ticket: string, url: string} | Caller) & {after?: number, limit?: number,
 *          stream?: string, types?: string[]}} options
 * @returns {Promise<{events: SpineEvent[], next: number, head: number}>}
 */
export async function read({ after = 0, limit = 100, stream, types = [], ...caller }) {
  const query = new URLSearchParams({ after: String(after), limit: String(limit) });
  if (stream) query.set("stream", stream);
  for (const type of types) query.append("type", type);
  if ("ticket" in caller) query.set("ticket", caller.ticket);
  return call(caller, "GET", `/v1/events?${query}`, undefined, ATTEMPTS);
}

/**
 * Any operation of Spine's HTTP API, retried as `append` and `read` are: a control-plane or
 * operator route (`/v1/tenants`, `/v1/routes`, `/v1/projections`…) needs only the token, a data
 * route the context too, a public one (`/metrics`) neither. Answers the body: JSON decoded, any
 * other type as text (null when there is none).
 *
 * @param {({url: string} | (Omit<Caller, "project" | "surface"> & {project?: string, surface?: string}))
 *          & {path: string, method?: string, body?: unknown, headers?: Record<string, string>,
 *             attempts?: number}} options
 *   `path` with its query string; `headers`: more of them (`If-Match`); `attempts`: 1 for a write
 *   the caller would rather see fail than retry.
 * @returns {Promise<any>}
 */
export async function request({ path, method = "GET", body, headers = {}, attempts = ATTEMPTS, ...caller }) {
  return call(caller, method, path, body, attempts, headers);
}

/**
 * One request, retried on a network error, a passing 503 and 429 (after Retry-After when the
 * answer tells it), with the token asked for again once after a 401.
 *
 * @param {{url: string, ticket?: string} | Caller} caller
 * @param {string} method
 * @param {string} path
 * @param {unknown} body
 * @param {number} attempts
 * @param {Record<string, string>} [extra]  more headers
 */
async function call(caller, method, path, body, attempts, extra = {}) {
  let refreshed = false;
  for (let attempt = 1; ; attempt += 1) {
    const headers = { ...extra, ...("getToken" in caller ? await contextHeaders(caller, refreshed) : {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`${base(caller.url)}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      if (attempt >= attempts) {
        throw new SpineError(`Spine is out of reach: ${method} ${path}`, { status: 0, cause });
      }
      await sleep(backoff(attempt));
      continue;
    }
    if (response.ok) return bodyOf(response);
    const error = await problemOf(response);
    if (error.status === 401 && "getToken" in caller && !refreshed) {
      refreshed = true;
      continue;
    }
    const passing = error.status === 429 || (error.status === 503 && !LASTING_503.test(error.errorCode ?? ""));
    if (passing && attempt < attempts) {
      await sleep(error.retryAfter === null ? backoff(attempt) : error.retryAfter * 1000);
      continue;
    }
    throw error;
  }
}

/**
 * The token, and the context headers the caller has (a control-plane route takes none).
 *
 * @param {Omit<Caller, "project" | "surface"> & {project?: string, surface?: string}} caller
 * @param {boolean} refresh
 * @returns {Promise<Record<string, string>>}
 */
async function contextHeaders({ getToken, project, surface, app, env }, refresh) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${await getToken({ refresh })}` };
  if (project) headers["X-Project-Id"] = project;
  if (surface) headers["X-Surface-Id"] = surface;
  if (app) headers["X-App-Id"] = app;
  if (env) headers["X-Env"] = env;
  return headers;
}

/** A success's body: JSON decoded, text otherwise, null when it has none. @param {Response} response */
async function bodyOf(response) {
  const text = await response.text();
  if (!text) return null;
  return /[/+]json\b/.test(response.headers.get("Content-Type") ?? "") ? JSON.parse(text) : text;
}

/** @param {Response} response */
async function problemOf(response) {
  /** @type {Record<string, unknown> | null} */
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    // not problem details: a proxy's page, say
  }
  const header = Number.parseFloat(response.headers.get("Retry-After") ?? "");
  const message = typeof problem?.message === "string" ? problem.message : response.statusText;
  return new SpineError(message || `HTTP ${response.status}`, {
    status: response.status,
    errorCode: typeof problem?.error_code === "string" ? problem.error_code : null,
    retryAfter: Number.isFinite(header) ? header : null,
    problem,
  });
}

/** Exponential from 250 ms, capped at 30 s, with full jitter over its upper half. */
function backoff(/** @type {number} */ failures) {
  const ceiling = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(failures - 1, 20));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function sleep(/** @type {number} */ ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function base(/** @type {string} */ url) {
  return url.replace(/\/+$/, "");
}

/** A UUIDv4; `crypto.randomUUID` exists in secure contexts only (https, localhost). */
function uuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
