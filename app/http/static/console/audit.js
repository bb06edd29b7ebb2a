/**
 * Audit (`#/audit`): the project's audit records (`GET /v1/audit`), oldest first, searched by
 * actor, action and time and paged by the `next` cursor the view answers. Tenant admins read
 * everyone's records; a member reads their own (Spine decides, the page only asks).
 */

import { partitionChosen, partitionForm } from "./partition.js";
import { call, query } from "./session.js";
import { field, fill, form, h, json, problem, table, when } from "./ui.js";

export const title = "Audit";

const PER_PAGE = 25;

/** @param {HTMLElement} root */
export function show(root) {
  const body = h("div");
  const use = () => {
    fill(body);
    if (partitionChosen()) showRecords(body);
  };
  root.append(h("h1", {}, "Audit"), partitionForm(use), body);
  use();
}

/** @param {HTMLElement} root */
function showRecords(root) {
  const out = h("div", { id: "audit-records", "aria-live": "polite" });
  /** @type {Record<string, string>} */
  let search = { limit: String(PER_PAGE) };
  /** @type {string[]} */
  let cursors = []; // the `after` of each page shown so far: the last is this page's

  /** @param {string} after */
  async function load(after) {
    const page = await call({ path: `/v1/audit${query({ ...search, after })}`, data: true });
    const pageNumber = cursors.length;
    fill(
      out,
      h(
        "p",
        { class: "line" },
        `Page ${pageNumber}: ${page.records.length} record(s).`,
        pageNumber > 1 ? h("button", { type: "button", class: "secondary", onclick: () => step(-1) }, "Previous page") : null,
        page.next ? h("button", { type: "button", onclick: () => step(1, page.next) }, "Next page") : null,
      ),
      table(
        "Audit records, oldest first",
        ["time", "actor", "action", "resource", "source", "request", "details"],
        page.records.map((/** @type {any} */ r) => [
          when(r.time),
          r.actor ?? "",
          h("strong", {}, r.action),
          h("code", {}, r.resource),
          r.source,
          r.request_id ? h("code", {}, r.request_id) : "",
          r.problem ? `${r.problem.error_code}: ${r.problem.detail}` : r.details ? json(r.details) : "",
        ]),
        "none match",
      ),
    );
  }

  /** @param {number} direction @param {string} [next] */
  async function step(direction, next) {
    try {
      if (direction > 0 && next) cursors.push(next);
      else cursors.pop();
      await load(cursors.at(-1) ?? "");
    } catch (error) {
      fill(out, problem(error));
    }
  }

  root.append(
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Search"),
      form(
        { class: "inline", "aria-label": "Search the audit records" },
        [
          field("Actor", h("input", { name: "actor", autocomplete: "off" }), "a user id"),
          field("Action", h("input", { name: "action", autocomplete: "off" }), "route.backend_switched, auth.violation…"),
          field("From", h("input", { name: "from", type: "datetime-local", step: 1 }), "your local time, inclusive"),
          field("To", h("input", { name: "to", type: "datetime-local", step: 1 }), "exclusive"),
          field("Per page", h("input", { name: "limit", type: "number", min: 1, max: 1000, value: String(PER_PAGE) })),
        ],
        "Search",
        async (values) => {
          search = {
            ...values,
            ...(values.from ? { from: new Date(values.from).toISOString() } : {}),
            ...(values.to ? { to: new Date(values.to).toISOString() } : {}),
          };
          cursors = [""];
          await load("");
          return null;
        },
      ),
    ),
    h("section", { class: "panel" }, h("h2", {}, "Records"), out),
  );
  cursors = [""];
  load("").catch((error) => fill(out, problem(error)));
}
