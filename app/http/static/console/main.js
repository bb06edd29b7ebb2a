/**
 * The console's shell: a router on `location.hash` (`#/routes`, `#/tenants/acme`), the header
 * saying who is signed in, and the page shown in <main>. Each page is one module exporting
 * `title` and `show(root, args)`, which answers a `leave()` that stops its timers and streams.
 */

import * as audit from "./audit.js";
import * as log from "./log.js";
import * as metrics from "./metrics.js";
import * as projections from "./projections.js";
import * as routes from "./routes.js";
import { call, claims, onChange, previous, signInPrevious, signOut, token } from "./session.js";
import * as signin from "./signin.js";
import * as tenants from "./tenants.js";
import { fill, h } from "./ui.js";

/** @typedef {{title: string, show(root: HTMLElement, args: string[]): {leave(): void} | void}} Page */

/** @type {Record<string, Page>} */
const PAGES = { "sign-in": signin, tenants, routes, projections, log, audit, metrics };
const PUBLIC = new Set(["sign-in", "metrics"]); // /metrics needs no token
const HOME = "tenants";

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const who = /** @type {HTMLElement} */ (document.getElementById("who"));
/** @type {{leave(): void} | void} */
let shown;
/** @type {string | null} */
let role = null; // what GET /v1/tenants told of the signed-in identity, for the header

/** A hash's part, decoded (a malformed escape is kept as it is rather than breaking the page). @param {string} part */
function decoded(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route() {
  const [name = HOME, ...given] = location.hash.replace(/^#\/?/, "").split("/").map(decoded);
  const wanted = PAGES[name] ? name : HOME;
  const args = wanted === name ? given : []; // an unknown page's arguments mean nothing to the home page
  const pageName = !token() && !PUBLIC.has(wanted) ? "sign-in" : wanted;
  const page = PAGES[pageName];
  try {
    shown?.leave();
  } catch (error) {
    console.warn("console:", error);
  }
  fill(main);
  document.title = `${page.title} · Spine console`;
  for (const link of document.querySelectorAll(".top nav a")) {
    const current = link.getAttribute("href") === `#/${pageName}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  shown = page.show(main, pageName === wanted ? args : [wanted, ...args]);
  main.focus({ preventScroll: true }); // keyboard and screen-reader users start at the page
}

/** The header: who is signed in (claims decoded for display), their role as Spine answers it. */
function showWho() {
  const claimed = claims();
  if (!token()) {
    fill(who, h("a", { href: "#/sign-in" }, "Sign in"));
    return;
  }
  const expires = claimed?.exp ? new Date(claimed.exp * 1000) : null;
  const expired = expires !== null && expires.getTime() < Date.now();
  const kept = previous();
  fill(
    who,
    h(
      "span",
      { title: `issuer ${claimed?.iss ?? "?"}${expires ? `, expires ${expires.toLocaleString()}` : ""}` },
      "Signed in as ",
      h("strong", { id: "who-user" }, claimed?.sub ?? "?"),
      " @ ",
      h("strong", { id: "who-tenant" }, claimed?.tenant_id ?? "?"),
      claimed?.env ? ` (env ${claimed.env})` : "",
      role ? ` · ${role}` : "",
      expired ? " · token expired" : "",
    ),
    kept
      ? h(
          "button",
          { type: "button", class: "secondary", onclick: () => signInPrevious() },
          `Back to ${kept.claims?.sub ?? "?"} @ ${kept.claims?.tenant_id ?? "?"}`,
        )
      : null,
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () => {
          signOut();
          location.hash = "#/sign-in";
        },
      },
      "Sign out",
    ),
  );
}

/** Ask Spine what the identity may administer: the one honest source of its role. */
async function probeRole() {
  role = null;
  showWho();
  if (!token()) return;
  const asked = token();
  try {
    await call({ path: "/v1/tenants", attempts: 2 });
    role = claims()?.tenant_id === "t_system" ? "system admin" : "tenant admin";
  } catch (error) {
    const e = /** @type {{status?: number, errorCode?: string}} */ (error);
    role = e.status === 403 ? "member: admin pages answer 403" : null;
  }
  if (token() === asked) showWho();
}

let signedInAs = token();
onChange(() => {
  if (token() === signedInAs) return; // a change of context only
  signedInAs = token();
  probeRole();
  route();
});
window.addEventListener("hashchange", route);
probeRole();
route();
