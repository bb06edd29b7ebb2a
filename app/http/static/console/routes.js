/**
 * Routes (`#/routes`, `#/routes/{tenant}`): the routing registry by kind × tenant × env × project
 * (`GET /v1/routes`), the history of its changes with their rationale (`GET /v1/routes/history`),
 * a form that writes a route (`PUT /v1/routes`) with the version it was read at, so that a change
 * made since is refused (409 `routing.version_conflict`) rather than undone, and what each route
 * does now (`GET /v1/diagnostics`: status, round trip, circuit breaker, lab fallback).
 */

import { call, query } from "./session.js";
import { check, datalist, field, fill, form, h, problem, select, status, table, uid, when } from "./ui.js";

export const title = "Routes";

// The resource kinds and backends of `domain.routing` (a test holds these lists to it).
export const KINDS = ["event_spine", "memory_store", "blackboard_store", "analytics_store", "seo_config_store", "budget_store", "audit", "tabular_store", "feature_flags", "kpi_store", "page_content_store", "rate_limit", "object_store", "realtime_registry", "key_store"];
export const BACKENDS = ["sqlite", "memory", "dynamodb", "firestore", "cosmos", "redis", "s3", "azure_blob", "filesystem"];

/** @param {HTMLElement} root @param {string[]} args */
export function show(root, [tenant = ""] = []) {
  const filter = { tenant_id: tenant, resource_kind: "", env: "" };
  const registry = h("div", { id: "route-table", "aria-live": "polite" }, h("p", { class: "hint" }, "Loading…"));
  const history = h("div", { id: "route-history", "aria-live": "polite" });
  const checks = h("div", { id: "route-diagnostics", "aria-live": "polite" });
  const tenantList = uid("tenants");
  const tenants = datalist(tenantList, ["*"]);

  async function loadRoutes() {
    try {
      const answer = await call({ path: `/v1/routes${query(filter)}` });
      fill(
        registry,
        table(
          "Routes (resolution: exact project, then the tenant's *, then the platform default tenant *)",
          ["kind", "tenant", "env", "project", "backend", "config", "tier", "version.num", "last switch", ""],
          answer.routes.map((/** @type {any} */ r) => [
            r.resource_kind,
            r.tenant_id,
            r.env,
            r.project_id ?? "*",
            h("strong", {}, r.backend_type),
            h("code", {}, JSON.stringify(r.config ?? {})),
            r.tier ?? "",
            String(r.version),
            r.last_switch_time ? h("span", {}, `from ${r.previous_backend_type ?? "?"} `, when(r.last_switch_time)) : "",
            h(
              "button",
              { type: "button", class: "secondary", "aria-label": `Switch ${r.resource_kind} of ${r.tenant_id}/${r.env}/${r.project_id ?? "*"}`, onclick: () => edit(r) },
              "Switch…",
            ),
          ]),
          "no route: lab tenants fall back to the embedded store, others are refused (503)",
        ),
      );
    } catch (error) {
      fill(registry, problem(error));
    }
  }

  async function loadHistory() {
    try {
      const answer = await call({ path: `/v1/routes/history${query({ tenant_id: filter.tenant_id, resource_kind: filter.resource_kind })}` });
      /** @type {Map<string, string>} */
      const backendOf = new Map();
      const rows = answer.changes.map((/** @type {any} */ c) => {
        const key = c.key.join("/");
        const before = backendOf.get(key);
        const now = c.route?.backend_type;
        if (now) backendOf.set(key, now);
        else backendOf.delete(key);
        const change = c.action === "deleted" ? "deleted" : before === undefined ? "created" : before !== now ? `switched from ${before}` : "changed";
        return [when(c.at), c.key[0], c.key[1], c.key[2], c.key[3], now ?? "—", change, c.actor ?? "", c.rationale ?? "", String(c.position)];
      });
      fill(history, table("Changes, newest first", ["at", "kind", "tenant", "env", "project", "backend", "change", "by", "rationale", "position.num"], rows.reverse()));
    } catch (error) {
      fill(history, problem(error));
    }
  }

  /** @type {any} */
  let lastDiagnostics = null;
  const everyKind = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", onchange: () => showDiagnostics() }));

  async function loadDiagnostics() {
    fill(checks, h("p", { class: "hint" }, "Probing every routed backend…"));
    try {
      const tenantFilter = filter.tenant_id === "*" ? "" : filter.tenant_id;
      lastDiagnostics = await call({ path: `/v1/diagnostics${query({ tenant_id: tenantFilter, env: filter.env })}` });
      showDiagnostics();
    } catch (error) {
      fill(checks, problem(error));
    }
  }

  // One row per routed kind and per failure; the kinds that only fall back to lab's embedded
  // store, or are optional and unused, folded into one row per project unless asked for.
  function showDiagnostics() {
    const answer = lastDiagnostics;
    if (!answer) return;
    const wanted = answer.checks.filter((/** @type {any} */ c) => !filter.resource_kind || c.resource_kind === filter.resource_kind);
    /** @type {unknown[][]} */
    const rows = [];
    /** @type {Map<string, any[]>} */
    const folded = new Map();
    const flush = () => {
      for (const [why, kinds] of folded) {
        const [c] = kinds;
        rows.push([
          c.tenant_id,
          c.project_id,
          `${kinds.length} other kind(s)`,
          c.lab_fallback ? "embedded (lab)" : "—",
          statusOf(c),
          "",
          "",
          c.lab_fallback ? "yes" : "no",
          `${why}: ${kinds.map((k) => k.resource_kind).join(", ")}`,
        ]);
      }
      folded.clear();
    };
    let group = "";
    for (const c of wanted) {
      if (`${c.tenant_id}/${c.project_id}` !== group) {
        flush();
        group = `${c.tenant_id}/${c.project_id}`;
      }
      const foldable = c.status === "missing" && (c.lab_fallback || c.optional);
      if (foldable && !everyKind.checked) {
        const why = c.lab_fallback ? "no route, lab's embedded store serves" : "no route, optional";
        folded.set(why, [...(folded.get(why) ?? []), c]);
        continue;
      }
      rows.push([
        c.tenant_id,
        c.project_id,
        c.resource_kind,
        c.backend_type ? h("strong", {}, c.backend_type) : c.lab_fallback ? "embedded (lab)" : "—",
        statusOf(c),
        c.round_trip_ms === null || c.round_trip_ms === undefined ? "" : String(c.round_trip_ms),
        breakerOf(c),
        c.lab_fallback ? "yes" : "no",
        [c.error_code, ...(c.warnings ?? [])].filter(Boolean).join("; "),
      ]);
    }
    flush();
    fill(
      checks,
      h(
        "p",
        { class: "line" },
        h("span", {}, "Deployment: ", h("strong", {}, answer.deployment)),
        h("span", {}, "env: ", h("strong", {}, answer.env)),
        h("span", {}, "ready: ", answer.ready ? status("ready", "ok") : status("not ready", "bad")),
        answer.ready ? null : h("span", {}, "platform defaults missing: ", answer.missing_platform_routes.join(", ")),
      ),
      table(
        "What each tenant's project uses, probed now",
        ["tenant", "project", "kind", "backend", "status", "round trip ms.num", "breaker", "lab fallback", "notes"],
        rows,
      ),
    );
  }

  const loadAll = () => Promise.all([loadRoutes(), loadHistory(), loadDiagnostics()]);

  async function loadTenants() {
    try {
      const answer = await call({ path: "/v1/tenants", attempts: 2 });
      fill(tenants, ["*", ...answer.tenants.map((/** @type {any} */ t) => t.tenant_id)].map((value) => h("option", { value })));
    } catch {
      // suggestions only
    }
  }

  /** @param {any} route  a listed route: fills the switch form with it and its version */
  function edit(route) {
    const element = root.querySelector("form[aria-label='Write a route']");
    if (!(element instanceof HTMLFormElement)) return;
    const set = (/** @type {string} */ name, /** @type {string} */ value) => {
      /** @type {HTMLInputElement} */ (element.elements.namedItem(name)).value = value;
    };
    set("resource_kind", route.resource_kind);
    set("tenant_id", route.tenant_id);
    set("env", route.env);
    set("project_id", route.project_id ?? "*");
    set("backend_type", route.backend_type);
    set("config", JSON.stringify(route.config ?? {}, null, 1));
    set("tier", route.tier ?? "");
    set("cost_notes", route.cost_notes ?? "");
    set("switch_rationale", "");
    set("expected_version", String(route.version));
    element.scrollIntoView({ block: "nearest" });
    /** @type {HTMLSelectElement} */ (element.elements.namedItem("backend_type")).focus();
  }

  const filterForm = form(
    { class: "inline", "aria-label": "Filter routes" },
    [
      field("Tenant", h("input", { name: "tenant_id", value: filter.tenant_id, list: tenantList, autocomplete: "off" }), "* = platform defaults"),
      field("Kind", select("resource_kind", [["", "every kind"], ...KINDS.map((k) => /** @type {[string, string]} */ ([k, k]))], "")),
      field("Env", h("input", { name: "env", autocomplete: "off" })),
    ],
    "Show",
    async (values) => {
      filter.tenant_id = values.tenant_id ?? "";
      filter.resource_kind = values.resource_kind ?? "";
      filter.env = values.env ?? "";
      await loadAll();
      return null;
    },
  );

  const switchForm = form(
    { class: "stacked", "aria-label": "Write a route" },
    [
      field("Kind", select("resource_kind", KINDS, "event_spine")),
      field("Tenant", h("input", { name: "tenant_id", required: true, list: tenantList, autocomplete: "off", value: tenant }), "* = platform default"),
      field("Env", h("input", { name: "env", required: true, value: "dev", autocomplete: "off" })),
      field("Project", h("input", { name: "project_id", value: "*", autocomplete: "off" }), "* = tenant-wide"),
      field("Backend", select("backend_type", BACKENDS, "sqlite")),
      field(
        "Expected version",
        h("input", { name: "expected_version", type: "number", min: 0, step: 1 }),
        "the route's version you read (Switch… fills it; 0: no route yet); blank: replace whatever is there",
      ),
      field("Tier", h("input", { name: "tier", autocomplete: "off" })),
      field("Cost notes", h("input", { name: "cost_notes", autocomplete: "off" })),
      h("div", { class: "wide" }, field("Config (JSON)", h("textarea", { name: "config", rows: 3, spellcheck: false }, '{"path": "acme.db"}'), "secrets only as secret://… references")),
      h("div", { class: "wide" }, field("Rationale", h("input", { name: "switch_rationale", autocomplete: "off" }), "why: kept in the history and the tenant's audit trail")),
    ],
    "Write route",
    async (values, element) => {
      const body = /** @type {Record<string, unknown>} */ ({ ...values });
      body.config = parseJson(values.config ?? "{}", "config");
      if (values.expected_version !== undefined) body.expected_version = Number(values.expected_version);
      const answer = await call({ path: "/v1/routes", method: "PUT", body, attempts: 1 });
      /** @type {HTMLInputElement} */ (element.elements.namedItem("expected_version")).value = String(answer.version);
      await loadAll();
      const where = `${answer.resource_kind} of ${answer.tenant_id} (${answer.env}, project ${answer.project_id ?? "*"})`;
      return answer.switched
        ? `Switched ${where} from ${answer.previous_backend_type} to ${answer.backend_type}: version ${answer.version}.`
        : `Wrote ${where} → ${answer.backend_type}: version ${answer.version}.`;
    },
  );

  root.append(
    h("h1", {}, tenant ? `Routes of ${tenant}` : "Routes"),
    tenants,
    filterForm,
    h("section", { class: "panel" }, h("h2", {}, "Registry"), registry),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Diagnostics"),
      h(
        "div",
        { class: "line" },
        h("button", { type: "button", class: "secondary", onclick: () => loadDiagnostics() }, "Probe again"),
        check("every kind, one row each", everyKind),
      ),
      checks,
    ),
    h("section", { class: "panel" }, h("h2", {}, "Switch a backend"), h("p", { class: "hint" }, "System admins write routes; a change takes effect on the next request in every process, and a switch is audited."), switchForm),
    h("section", { class: "panel" }, h("h2", {}, "History"), history),
  );
  loadAll();
  loadTenants();
}

/** @param {string} text @param {string} name */
function parseJson(text, name) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${name} is not JSON: ${/** @type {Error} */ (error).message}`);
  }
}

/** @param {any} check */
function statusOf(check) {
  if (check.status === "ok") return status("ok", "ok");
  if (check.status === "missing" && check.lab_fallback) return status("missing: lab fallback", "warn");
  if (check.status === "missing" && check.optional) return status("missing (optional)", "idle");
  return status(check.status, "bad");
}

/** @param {any} check */
function breakerOf(check) {
  if (!check.breaker) return "";
  if (check.breaker === "closed") return status("closed", "ok");
  if (check.breaker === "half_open") return status("half open", "warn");
  return status(`open, ${Math.ceil(check.retry_after_seconds ?? 0)} s left`, "bad");
}
