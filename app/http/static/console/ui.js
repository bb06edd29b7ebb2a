/**
 * Small DOM helpers shared by the pages. Everything a page shows that came from Spine goes in as
 * text (`textContent`), never as markup: an event's data is whatever a client wrote.
 */

let lastId = 0;

/**
 * An element: `h("td", {class: "num"}, "3")`. Attributes starting with `on` are listeners; `false`,
 * null and undefined attributes are left out; children are nodes, strings or arrays of them.
 *
 * @param {string} tag
 * @param {Record<string, unknown>} [attributes]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), /** @type {EventListener} */ (value));
    } else if (name in element && !name.includes("-") && name !== "list" && name !== "form") {
      // properties (value, checked, disabled…) rather than attributes, so forms show them
      /** @type {any} */ (element)[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/** @param {Node} parent @param {unknown[]} children */
function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A fresh id for a control and its label. @param {string} prefix */
export function uid(prefix) {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

/**
 * A labelled control: `field("Tenant id", h("input", {name: "tenant_id", required: true}))`.
 *
 * @param {string} label
 * @param {HTMLElement} control  an input, select or textarea (given an id if it has none)
 * @param {string} [note]  a hint under the control, tied to it by aria-describedby
 */
export function field(label, control, note) {
  if (!control.id) control.id = uid("f");
  const parts = [h("label", { for: control.id }, label), control];
  if (note) {
    const noteId = uid("n");
    control.setAttribute("aria-describedby", noteId);
    parts.push(h("span", { class: "note", id: noteId }, note));
  }
  return h("div", { class: "field" }, parts);
}

/** A checkbox with its label beside it (the label wraps it). @param {string} label @param {HTMLInputElement} box */
export function check(label, box) {
  return h("label", { class: "check" }, box, label);
}

/**
 * A `<select>` of `options` (strings, or [value, label] pairs).
 *
 * @param {string} name
 * @param {(string | [string, string])[]} options
 * @param {string} [selected]
 */
export function select(name, options, selected) {
  return h(
    "select",
    { name },
    options.map((option) => {
      const [value, label] = Array.isArray(option) ? option : [option, option];
      return h("option", { value, selected: value === selected }, label);
    }),
  );
}

/**
 * A `<datalist>` of suggestions for text inputs (`list` attribute), which stay free to type in.
 *
 * @param {string} id
 * @param {string[]} values
 */
export function datalist(id, values) {
  return h("datalist", { id }, values.map((value) => h("option", { value })));
}

/**
 * A table: `columns` are headers (a `.num` suffix right-aligns: "lag.num"); `rows` arrays of cells.
 *
 * @param {string} caption  what the table is (read by screen readers, shown small)
 * @param {string[]} columns
 * @param {unknown[][]} rows
 * @param {string} [empty]  said instead of an empty table
 */
export function table(caption, columns, rows, empty = "nothing yet") {
  if (rows.length === 0) return h("p", { class: "empty" }, `${caption}: ${empty}.`);
  const classes = columns.map((column) => (column.endsWith(".num") ? "num" : undefined));
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((column, i) => h("th", { scope: "col", class: classes[i] }, column.replace(/\.num$/, ""))))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell, i) => h("td", { class: classes[i] }, cell))))),
  );
}

/**
 * A status in words and colour: `status("ok", "ok")`, `status("unreachable", "bad")`.
 *
 * @param {string} text
 * @param {"ok" | "warn" | "bad" | "idle"} kind
 */
export function status(text, kind) {
  return h("span", { class: `status ${kind}` }, text);
}

/**
 * What went wrong, as Spine said it: `403 auth.forbidden: this needs a system administrator`.
 *
 * @param {unknown} error  a SpineError (status, errorCode, message), or anything thrown
 */
export function problemText(error) {
  const e = /** @type {{status?: number, errorCode?: string | null, message?: string}} */ (error ?? {});
  if (e.status === 0) return `Spine is out of reach (${e.message ?? "no answer"}); it is asked again`;
  if (typeof e.status === "number") {
    return `${e.status} ${e.errorCode ?? "error"}: ${e.message ?? ""}`.trim();
  }
  return String(e.message ?? error);
}

/** A problem shown where it happened, announced to screen readers. @param {unknown} error */
export function problem(error) {
  const e = /** @type {{status?: number}} */ (error ?? {});
  const hint = e.status === 401 ? h("span", {}, " — ", h("a", { href: "#/sign-in" }, "sign in again")) : null;
  return h("div", { class: "message problem", role: "alert" }, problemText(error), hint);
}

/** A success, announced politely. @param {string} text */
export function done(text) {
  return h("div", { class: "message done", role: "status" }, text);
}

/** A warning or explanation. @param {...unknown} children */
export function note(...children) {
  return h("div", { class: "message note" }, children);
}

/** Replace `element`'s children. @param {Element} element @param {...unknown} children */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** JSON, compact and shown as text. @param {unknown} value */
export function json(value) {
  return h("pre", { class: "json" }, value === undefined ? "" : JSON.stringify(value, null, 1));
}

/** A time as the operator reads it (their local time), with the exact value in a tooltip. @param {string | null | undefined} iso */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

/** A form's fields as strings, trimmed; empty ones left out. @param {HTMLFormElement} form */
export function values(form) {
  /** @type {Record<string, string>} */
  const found = {};
  for (const [name, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text !== "") found[name] = text;
  }
  return found;
}

/**
 * A form whose submission runs `action` (the page never reloads): its button is disabled while it
 * runs, and what it answers — a success text, or the problem it threw — is shown in `out`.
 *
 * @param {Record<string, unknown>} attributes  (`class`, `aria-label`…)
 * @param {unknown[]} controls
 * @param {string} submit  the button's text
 * @param {(values: Record<string, string>, form: HTMLFormElement) => Promise<string | null | void>} action
 */
export function form(attributes, controls, submit, action) {
  const out = h("div", { class: "form-out", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, submit);
  const element = /** @type {HTMLFormElement} */ (
    h("form", attributes, controls, h("div", { class: "field submit" }, button))
  );
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.setAttribute("disabled", "");
    fill(out);
    try {
      const said = await action(values(element), element);
      if (said) fill(out, done(said));
    } catch (error) {
      fill(out, problem(error));
    } finally {
      button.removeAttribute("disabled");
    }
  });
  return h("div", {}, element, out);
}

/**
 * Run `task` now and then every `ms` after each run ends (never two at once), until stopped.
 *
 * @param {() => Promise<void>} task
 * @param {number} ms
 * @returns {{stop(): void, now(): void, every(ms: number): void}}
 */
export function every(task, ms) {
  let stopped = false;
  let running = false;
  let period = ms;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ let timer;
  const run = async () => {
    clearTimeout(timer);
    if (stopped || running) return;
    running = true;
    try {
      await task();
    } catch (error) {
      console.warn("console:", error);
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(run, period);
    }
  };
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    now() {
      run();
    },
    every(next) {
      period = next;
    },
  };
}
