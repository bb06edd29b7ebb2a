/**
 * Tenants (`#/tenants`) and one tenant (`#/tenants/{id}`): its projects, surfaces, apps with the
 * browser origins they allow, members, and tokens minted for them. Everything through the
 * control-plane API: `GET /v1/tenants` lists what the identity administers (system admins: every
 * tenant; tenant admins: their own; members: 403), the writes are the documented POST/PUT.
 */

import { call, signIn } from "./session.js";
import { datalist, done, field, fill, form, h, problem, select, table, uid } from "./ui.js";

export const title = "Tenants";

const ROLES = ["member", "admin", "agent"];
const FALLBACK_MODES = ["lab", "saas", "enterprise"];

/** @param {HTMLElement} root @param {string[]} args */
export function show(root, [tenantId] = []) {
  if (tenantId) return showTenant(root, tenantId);
  return showList(root);
}

/** @param {HTMLElement} root */
function showList(root) {
  const listing = h("div", { id: "tenant-list", "aria-live": "polite" }, h("p", { class: "hint" }, "Loading…"));
  const modes = select("mode", FALLBACK_MODES, "lab");

  async function load() {
    try {
      const answer = await call({ path: "/v1/tenants" });
      fill(
        listing,
        table(
          "Tenants you administer",
          ["tenant", "name", "mode", "projects", "see"],
          answer.tenants.map((/** @type {any} */ t) => [
            h("a", { href: `#/tenants/${encodeURIComponent(t.tenant_id)}` }, t.tenant_id),
            t.name,
            t.mode,
            t.projects.join(", ") || "—",
            h(
              "span",
              { class: "line" },
              h("a", { href: `#/routes/${encodeURIComponent(t.tenant_id)}` }, "routes"),
              h("a", { href: `#/projections/${encodeURIComponent(t.tenant_id)}` }, "views"),
            ),
          ]),
          "none",
        ),
      );
    } catch (error) {
      fill(listing, problem(error));
    }
  }

  async function loadModes() {
    try {
      const found = await call({ path: "/v1/modes", attempts: 2 });
      const names = found.map((/** @type {{name: string}} */ mode) => mode.name);
      if (names.length) fill(modes, names.map((name) => h("option", { value: name, selected: name === "lab" }, name)));
    } catch {
      // only system admins read the modes; the fallback list is what bootstrap seeds
    }
  }

  root.append(
    h("h1", {}, "Tenants"),
    listing,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "New tenant"),
      h("p", { class: "hint" }, "System admins create tenants; a tenant's mode says where its data may live (lab: embedded stores allowed)."),
      form(
        { class: "inline", "aria-label": "New tenant" },
        [
          field("Tenant id", h("input", { name: "tenant_id", required: true, autocomplete: "off" })),
          field("Name", h("input", { name: "name", required: true, autocomplete: "off" })),
          field("Mode", modes),
        ],
        "Create tenant",
        async (values, element) => {
          const answer = await call({ path: "/v1/tenants", method: "POST", body: values, attempts: 1 });
          element.reset();
          await load();
          return `Created tenant ${answer.tenant_id} (${answer.mode}) at position ${answer.position}.`;
        },
      ),
    ),
  );
  load();
  loadModes();
}

/** @param {HTMLElement} root @param {string} tenantId */
function showTenant(root, tenantId) {
  const base = `/v1/tenants/${encodeURIComponent(tenantId)}`;
  const summary = h("p", { class: "line" }, "Loading…");
  const projects = h("div", { "aria-live": "polite" });
  const surfaces = h("div", { "aria-live": "polite" });
  const apps = h("div", { "aria-live": "polite" });
  const members = h("div", { "aria-live": "polite" });
  const memberList = uid("members");
  const memberOptions = datalist(memberList, []);

  async function load() {
    try {
      const tenant = await call({ path: base });
      fill(
        summary,
        h("span", {}, "Name: ", h("strong", {}, tenant.name)),
        h("span", {}, "Mode: ", h("strong", {}, tenant.mode)),
        h("a", { href: `#/routes/${encodeURIComponent(tenantId)}` }, "Its routes and diagnostics"),
        h("a", { href: `#/projections/${encodeURIComponent(tenantId)}` }, "Its views"),
      );
      fill(projects, table("Projects", ["project", "name"], tenant.projects.map((/** @type {any} */ p) => [p.project_id, p.name])));
      fill(surfaces, table("Surfaces", ["surface", "name"], tenant.surfaces.map((/** @type {any} */ s) => [s.surface_id, s.name])));
      fill(
        apps,
        table(
          "Apps and the browser origins they allow",
          ["app", "name", "origins", "version.num", ""],
          tenant.apps.map((/** @type {any} */ a) => [
            a.app_id,
            a.name,
            a.origins.length ? h("ul", {}, a.origins.map((/** @type {string} */ o) => h("li", {}, h("code", {}, o)))) : "none",
            String(a.version),
            h("button", { type: "button", class: "secondary", onclick: () => editApp(a) }, `Edit ${a.app_id}`),
          ]),
        ),
      );
      const entries = Object.entries(tenant.members);
      fill(members, table("Members (roles come from these records, never from a token)", ["user", "role"], entries));
      fill(memberOptions, entries.map(([user]) => h("option", { value: user })));
    } catch (error) {
      fill(summary, problem(error));
    }
  }

  /** @param {{app_id: string, name: string, origins: string[], version: number}} app */
  function editApp(app) {
    const form = root.querySelector("form[aria-label='App and its origins']");
    if (!(form instanceof HTMLFormElement)) return;
    /** @type {HTMLInputElement} */ (form.elements.namedItem("app_id")).value = app.app_id;
    /** @type {HTMLInputElement} */ (form.elements.namedItem("name")).value = app.name;
    /** @type {HTMLTextAreaElement} */ (form.elements.namedItem("origins")).value = app.origins.join("\n");
    /** @type {HTMLInputElement} */ (form.elements.namedItem("expected_version")).value = String(app.version);
    /** @type {HTMLInputElement} */ (form.elements.namedItem("name")).focus();
  }

  /**
   * A form creating one kind of record (`POST {base}/{path}`), then reloading the tenant.
   *
   * @param {string} label  @param {string} path  @param {string} idName  @param {string} noun
   */
  const creator = (label, path, idName, noun) =>
    form(
      { class: "inline", "aria-label": label },
      [
        field(`${noun[0].toUpperCase()}${noun.slice(1)} id`, h("input", { name: idName, required: true, autocomplete: "off" })),
        field("Name", h("input", { name: "name", required: true, autocomplete: "off" })),
      ],
      label,
      async (values, element) => {
        const answer = await call({ path: `${base}/${path}`, method: "POST", body: values, attempts: 1 });
        element.reset();
        await load();
        return `Created ${noun} ${answer[idName]} at position ${answer.position}.`;
      },
    );

  const tokenOut = h("div", { "aria-live": "polite" });
  root.append(
    h("p", {}, h("a", { href: "#/tenants" }, "← All tenants")),
    h("h1", {}, `Tenant ${tenantId}`),
    summary,
    h(
      "div",
      { class: "columns" },
      h("section", { class: "panel" }, h("h2", {}, "Projects"), projects, creator("New project", "projects", "project_id", "project")),
      h("section", { class: "panel" }, h("h2", {}, "Surfaces"), surfaces, creator("New surface", "surfaces", "surface_id", "surface")),
    ),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Apps"),
      apps,
      form(
        { class: "stacked", "aria-label": "App and its origins" },
        [
          field("App id", h("input", { name: "app_id", required: true, autocomplete: "off" })),
          field("Name", h("input", { name: "name", required: true, autocomplete: "off" })),
          field(
            "Expected version",
            h("input", { name: "expected_version", type: "number", min: 0, step: 1 }),
            "the version you read (Edit fills it): a change made since is refused (409)",
          ),
          h(
            "div",
            { class: "wide" },
            field(
              "Origins, one per line",
              h("textarea", { name: "origins", rows: 3, spellcheck: false }),
              "scheme://host[:port], exactly as a browser sends Origin",
            ),
          ),
        ],
        "Save app",
        async (values, element) => {
          const origins = (values.origins ?? "").split(/\s+/).filter(Boolean);
          const headers = values.expected_version ? { "If-Match": `"${values.expected_version}"` } : {};
          const answer = await call({
            path: `${base}/apps/${encodeURIComponent(values.app_id ?? "")}`,
            method: "PUT",
            body: { name: values.name, origins },
            headers,
            attempts: 1,
          });
          element.reset();
          await load();
          return `Saved app ${answer.app_id}: version ${answer.version}, ${answer.origins.length} origin(s).`;
        },
      ),
    ),
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Members"),
        members,
        form(
          { class: "inline", "aria-label": "Add a member" },
          [
            field("User id", h("input", { name: "user_id", required: true, autocomplete: "off", list: memberList })),
            field("Role", select("role", ROLES, "member")),
          ],
          "Add or change member",
          async (values) => {
            const answer = await call({ path: `${base}/members`, method: "POST", body: values, attempts: 1 });
            await load();
            return `${answer.user_id} is now ${answer.role} of ${tenantId}.`;
          },
        ),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Tokens"),
        h("p", { class: "hint" }, "Spine keeps no list of tokens: each is minted for a member, shown once, and valid until it expires."),
        memberOptions,
        form(
          { class: "inline", "aria-label": "Mint a token" },
          [
            field("User id", h("input", { name: "user_id", required: true, autocomplete: "off", list: memberList })),
            field("TTL (seconds)", h("input", { name: "ttl_seconds", type: "number", min: 60, step: 1 }), "default: the deployment's"),
            field("Env", h("input", { name: "env", autocomplete: "off" }), "pins the token to one env"),
          ],
          "Mint token",
          async (values) => {
            const body = { ...values, ...(values.ttl_seconds ? { ttl_seconds: Number(values.ttl_seconds) } : {}) };
            const answer = await call({ path: `${base}/tokens`, method: "POST", body, attempts: 1 });
            showToken(answer);
            return null;
          },
        ),
        tokenOut,
      ),
    ),
  );

  /** @param {{token: string, user_id: string, tenant_id: string, expires_at: string}} minted */
  function showToken(minted) {
    const box = h("textarea", { readonly: true, rows: 3, id: uid("token"), spellcheck: false }, minted.token);
    fill(
      tokenOut,
      done(`Token for ${minted.user_id} @ ${minted.tenant_id}, until ${new Date(minted.expires_at).toLocaleString()}. It is shown once.`),
      field("The token", box),
      h(
        "div",
        { class: "line" },
        h(
          "button",
          {
            type: "button",
            id: "use-token",
            onclick: () => {
              location.hash = "#/log";
              signIn(minted.token, { keepPrevious: true });
            },
          },
          `Use it in this console (as ${minted.user_id})`,
        ),
        h("span", { class: "hint" }, "the header's Back button returns to who you are now"),
      ),
    );
  }

  load();
}
