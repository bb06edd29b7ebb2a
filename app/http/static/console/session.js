/**
 * Who the console acts as, and the calls it makes as them.
 *
 * The token is kept in this tab's sessionStorage only: never localStorage (it would outlive the
 * tab and reach every other tab of the origin), never a URL (URLs reach logs and histories). Its
 * claims are decoded here to show who is signed in, for display only: Spine verifies the token on
 * every call, and roles come from membership records, never from the token.
 *
 * Every call goes through spine.js's `request`: the same retries as any client of Spine (network
 * errors, a passing 503, 429 after Retry-After), and each refusal thrown as a SpineError with the
 * problem's `error_code` and `message`.
 */

import { request } from "../v1/client.js";

const TOKEN = "spine.console.token";
const PREVIOUS = "spine.console.previous"; // the identity to go back to after "use this token"
const CONTEXT = "spine.console.context";

/** @type {Set<() => void>} */
const listeners = new Set();

/** @returns {string | null} */
export function token() {
  return sessionStorage.getItem(TOKEN);
}

/**
 * Sign in with `value`; with `keepPrevious`, the identity signed in now can be gone back to.
 *
 * @param {string} value
 * @param {{keepPrevious?: boolean}} [options]
 */
export function signIn(value, { keepPrevious = false } = {}) {
  const current = token();
  if (keepPrevious && current && current !== value) sessionStorage.setItem(PREVIOUS, current);
  else sessionStorage.removeItem(PREVIOUS);
  sessionStorage.setItem(TOKEN, value.trim());
  const claimed = claimsOf(value);
  // The data pages' partition starts in the token's env, if it pins one; project and surface are chosen.
  sessionStorage.setItem(CONTEXT, JSON.stringify({ env: claimed?.env ?? "", project: "", surface: "" }));
  changed();
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(PREVIOUS);
  sessionStorage.removeItem(CONTEXT);
  changed();
}

/** The identity kept by `signIn(…, {keepPrevious: true})`, if any. */
export function previous() {
  const kept = sessionStorage.getItem(PREVIOUS);
  return kept ? { token: kept, claims: claimsOf(kept) } : null;
}

/** Go back to the previous identity. */
export function signInPrevious() {
  const kept = sessionStorage.getItem(PREVIOUS);
  if (kept) signIn(kept);
}

/**
 * @typedef {{sub?: string, tenant_id?: string, env?: string, exp?: number, iss?: string}} Claims
 */

/**
 * A JWT's claims, decoded without verifying anything (display only); null for what is no JWT.
 *
 * @param {string | null} value
 * @returns {Claims | null}
 */
export function claimsOf(value) {
  const part = value?.trim().split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The signed-in token's claims. */
export function claims() {
  return claimsOf(token());
}

/**
 * The partition the data pages (log, audit) read: the token's tenant, this env, project and surface.
 *
 * @returns {{env: string, project: string, surface: string}}
 */
export function context() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(CONTEXT) ?? "{}");
    return { env: kept.env ?? "", project: kept.project ?? "", surface: kept.surface ?? "" };
  } catch {
    return { env: "", project: "", surface: "" };
  }
}

/** @param {{env?: string, project?: string, surface?: string}} chosen */
export function setContext(chosen) {
  sessionStorage.setItem(CONTEXT, JSON.stringify({ ...context(), ...chosen }));
  changed();
}

/** Hear of every sign-in, sign-out and change of context. @param {() => void} listener */
export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed() {
  for (const listener of listeners) listener();
}

/**
 * One call of Spine's API as the signed-in operator. `data`: a data route, which carries the
 * context headers (project, surface, env); the others (control plane, routes, projections) take
 * the token alone, and public ones (`/metrics`) need `anonymous`.
 *
 * @param {{path: string, method?: string, body?: unknown, headers?: Record<string, string>,
 *          attempts?: number, data?: boolean, anonymous?: boolean}} options
 */
export function call({ data = false, anonymous = false, ...options }) {
  const url = location.origin;
  if (anonymous) return request({ url, ...options });
  const getToken = async () => token() ?? "";
  if (!data) return request({ url, getToken, ...options });
  const { env, project, surface } = context();
  return request({ url, getToken, project, surface, env: env || undefined, ...options });
}

/** A query string of the given, non-empty values. @param {Record<string, unknown>} query */
export function query(query) {
  const found = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") found.set(name, String(value));
  }
  const text = found.toString();
  return text ? `?${text}` : "";
}
