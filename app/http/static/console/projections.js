/**
 * Projections (`#/projections`, `#/projections/{tenant}`): every view's generation, position, head
 * and lag (`GET /v1/projections`, polled), a lag chart over the last minutes kept in this page's
 * memory, and blue-green rebuilds (`POST /v1/projections/{name}/rebuild`) with their progress,
 * polled until the new generation is swapped in.
 */

import { lineChart, samples } from "./charts.js";
import { call, query } from "./session.js";
import { every, field, fill, form, h, problem, status, table } from "./ui.js";

export const title = "Projections";

const WINDOW_MS = 10 * 60_000;
const POLL_MS = 2_000;
const REBUILD_POLL_MS = 500;
// The lag history survives leaving the page and coming back (not a reload): it is this tab's memory.
const lag = samples(WINDOW_MS);

/** @param {HTMLElement} root @param {string[]} args */
export function show(root, [tenant = ""] = []) {
  const filter = { tenant_id: tenant, name: "" };
  const state = h("p", { class: "line", "aria-live": "polite" }, "Loading…");
  const views = h("div", { id: "views" });
  const chart = h("div", { id: "lag-chart" });
  const rebuildOut = h("div", { "aria-live": "polite" });

  async function poll() {
    let answer;
    try {
      answer = await call({ path: `/v1/projections${query(filter)}`, attempts: 3 });
    } catch (error) {
      fill(state, problem(error), h("span", { class: "hint" }, "the last answer stays shown; asking again"));
      return;
    }
    const now = Date.now();
    /** @type {Map<string, number>} */
    const byName = new Map();
    for (const view of answer.projections) byName.set(view.name, (byName.get(view.name) ?? 0) + view.lag);
    for (const [name, behind] of byName) lag.add(name, behind, now);
    const building = answer.projections.some((/** @type {any} */ v) => v.rebuild && v.rebuild.state === "building");
    ticker.every(building ? REBUILD_POLL_MS : POLL_MS);
    fill(
      state,
      h("span", {}, `${answer.projections.length} view(s) of ${byName.size} projection(s)`),
      h("span", {}, "total lag ", h("strong", {}, String([...byName.values()].reduce((a, b) => a + b, 0))), " events"),
      h("span", { class: "hint" }, `updated ${new Date(now).toLocaleTimeString()}`),
    );
    const focused = document.activeElement?.getAttribute("aria-label");
    fill(
      views,
      table(
        "Views by partition",
        ["view", "tenant", "env", "project", "generation.num", "position.num", "head.num", "lag.num", "state", "rebuild", ""],
        answer.projections.map((/** @type {any} */ v) => [
          h("strong", {}, v.name),
          v.tenant_id,
          v.env,
          v.project_id,
          String(v.generation),
          String(v.position),
          String(v.head),
          String(v.lag),
          h(
            "span",
            { class: "line" },
            v.lag === 0 ? status("caught up", "ok") : status(`${v.lag} behind`, "warn"),
            v.leading ? "" : status("projected by another process", "idle"),
          ),
          rebuildCell(v.rebuild),
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `Rebuild ${v.name} of ${v.tenant_id}/${v.env}/${v.project_id}`,
              onclick: () => rebuild(v.name, { tenant_id: v.tenant_id, env: v.env, project_id: v.project_id }),
            },
            "Rebuild",
          ),
        ]),
        "no view runs yet: a view starts with its first read or write, or a rebuild",
      ),
    );
    if (focused) /** @type {HTMLElement | null} */ (views.querySelector(`[aria-label="${CSS.escape(focused)}"]`))?.focus();
    fill(chart, lineChart({ title: "Lag by projection (events behind the head, summed over partitions)", series: lag.series(), unit: "events", windowMs: WINDOW_MS, now }));
  }

  /**
   * @param {string} name
   * @param {{tenant_id?: string, env?: string, project_id?: string}} where
   */
  async function rebuild(name, where) {
    fill(rebuildOut, h("p", { class: "hint" }, `Starting a rebuild of ${name}…`));
    try {
      const answer = await call({ path: `/v1/projections/${encodeURIComponent(name)}/rebuild`, method: "POST", body: where, attempts: 1 });
      const started = answer.projections.map((/** @type {any} */ v) => `${v.tenant_id}/${v.env}/${v.project_id}`).join(", ");
      fill(rebuildOut, h("div", { class: "message done", role: "status" }, `Rebuilding ${name} of ${started || "no partition"}: its progress shows in the table.`));
    } catch (error) {
      fill(rebuildOut, problem(error));
    }
    ticker.every(REBUILD_POLL_MS);
    ticker.now();
  }

  root.append(
    h("h1", {}, tenant ? `Projections of ${tenant}` : "Projections"),
    form(
      { class: "inline", "aria-label": "Filter views" },
      [
        field("Tenant", h("input", { name: "tenant_id", value: tenant, autocomplete: "off" }), "system admins: blank = every tenant"),
        field("View", h("input", { name: "name", autocomplete: "off" })),
      ],
      "Show",
      async (values) => {
        filter.tenant_id = values.tenant_id ?? "";
        filter.name = values.name ?? "";
        ticker.now();
        return null;
      },
    ),
    state,
    h("section", { class: "panel" }, h("h2", {}, "Lag over the last minutes"), chart),
    h("section", { class: "panel" }, h("h2", {}, "Views"), rebuildOut, views),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Rebuild a view"),
      h("p", { class: "hint" }, "Blue-green: the next generation is built from position 0 beside the serving one, which keeps answering, and swapped in once caught up."),
      form(
        { class: "inline", "aria-label": "Rebuild a view" },
        [
          field("View", h("input", { name: "name", required: true, autocomplete: "off" }), "memory, audit, blackboard…"),
          field("Tenant", h("input", { name: "tenant_id", value: tenant, autocomplete: "off" })),
          field("Project", h("input", { name: "project_id", autocomplete: "off" }), "blank: every partition it runs for"),
          field("Env", h("input", { name: "env", autocomplete: "off" })),
        ],
        "Rebuild",
        async ({ name, ...where }) => {
          await rebuild(name ?? "", where);
          return null;
        },
      ),
    ),
  );
  const ticker = every(poll, POLL_MS);
  return { leave: () => ticker.stop() };
}

/** @param {any} rebuild  a view's rebuild status, or null */
function rebuildCell(rebuild) {
  if (!rebuild) return "";
  const progress = h("progress", { max: Math.max(rebuild.head, 1), value: rebuild.position });
  const done = `${rebuild.position}/${rebuild.head}`;
  switch (rebuild.state) {
    case "building":
      return h(
        "span",
        { class: "line" },
        status("building", "warn"),
        progress,
        `${done} · ${rebuild.events_per_second} ev/s${rebuild.eta_seconds === null ? "" : ` · ${rebuild.eta_seconds} s left`}`,
      );
    case "swapped":
      return h("span", { class: "line" }, status("swapped", "ok"), `generation ${rebuild.generation} serves (${done})`);
    case "elsewhere":
      return h("span", { class: "line" }, status("another process builds it", "idle"), done);
    default:
      return h("span", { class: "line" }, status(rebuild.state, "bad"), rebuild.error ?? "");
  }
}
