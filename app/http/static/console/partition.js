/**
 * The partition the data pages read: the signed-in token's tenant (it cannot be chosen: identity
 * comes from the token), an env, a project and a surface, sent as the context headers. Tenant
 * admins get their projects and surfaces as suggestions; a member types them.
 */

import { call, claims, context, setContext } from "./session.js";
import { datalist, field, form, h, note, uid } from "./ui.js";

/**
 * @param {() => void} onUse  called once the operator chose a partition
 * @returns {HTMLElement}
 */
export function partitionForm(onUse) {
  const tenant = claims()?.tenant_id ?? "?";
  const chosen = context();
  const projectList = uid("projects");
  const surfaceList = uid("surfaces");
  const projects = datalist(projectList, []);
  const surfaces = datalist(surfaceList, []);
  const suggest = async () => {
    try {
      const record = await call({ path: `/v1/tenants/${encodeURIComponent(tenant)}`, attempts: 2 });
      projects.replaceChildren(...record.projects.map((/** @type {any} */ p) => h("option", { value: p.project_id })));
      surfaces.replaceChildren(...record.surfaces.map((/** @type {any} */ s) => h("option", { value: s.surface_id })));
    } catch {
      // a member may not read the tenant record: no suggestions
    }
  };
  suggest();
  const unchosen = note("Choose a project and a surface (the X-Project-Id and X-Surface-Id every data call sends).");
  unchosen.hidden = Boolean(chosen.project && chosen.surface);
  return h(
    "section",
    { class: "panel" },
    h("h2", {}, "Partition"),
    h(
      "p",
      { class: "hint" },
      "A partition is (tenant, env, project): the tenant is your token's, ",
      h("strong", {}, tenant),
      ". To read another tenant's log, mint a token for one of its members on the Tenants page and use it here.",
    ),
    projects,
    surfaces,
    form(
      { class: "inline", "aria-label": "Choose the partition" },
      [
        field("Env", h("input", { name: "env", value: chosen.env, autocomplete: "off", placeholder: "default" }), "blank: the token's or the deployment's"),
        field("Project", h("input", { name: "project", value: chosen.project, required: true, autocomplete: "off", list: projectList })),
        field("Surface", h("input", { name: "surface", value: chosen.surface, required: true, autocomplete: "off", list: surfaceList })),
      ],
      "Use this partition",
      async (values) => {
        setContext({ env: values.env ?? "", project: values.project ?? "", surface: values.surface ?? "" });
        unchosen.hidden = true;
        onUse();
        return null;
      },
    ),
    unchosen,
  );
}

/** Whether a partition was chosen. */
export function partitionChosen() {
  const { project, surface } = context();
  return Boolean(project && surface);
}
