/**
 * The log (`#/log`): one partition's events by cursor, filtered by stream and type
 * (`GET /v1/events`), one stream's versions (`GET /v1/streams/{stream}`), and a live tail over
 * Server-Sent Events through spine.js's `follow`, on stream tickets (`POST /v1/stream-tickets`):
 * it resumes from the last event shown across reconnects and server restarts, each event once.
 */

import { follow } from "../v1/client.js";
import { partitionChosen, partitionForm } from "./partition.js";
import { call, context, query } from "./session.js";
import { every, field, fill, form, h, problem, problemText, status, table, when } from "./ui.js";

export const title = "Log";

const TAIL_KEEP = 500; // events the tail shows; older ones leave the page
const TAIL_BACKLOG = 10; // events before the head the tail starts with, for context
const TICKET_SECONDS = 600;

/** @param {HTMLElement} root */
export function show(root) {
  const body = h("div");
  /** @type {{leave(): void} | null} */
  let shown = null;
  const use = () => {
    shown?.leave();
    fill(body);
    shown = partitionChosen() ? showPartition(body) : null;
  };
  root.append(h("h1", {}, "Log"), partitionForm(use), body);
  use();
  return { leave: () => shown?.leave() };
}

/** @param {HTMLElement} root */
function showPartition(root) {
  const { env, project, surface } = context();
  const tail = tailSection();
  const streamSection = streamView();
  root.append(
    h("p", { class: "hint" }, `Partition: env ${env || "(default)"}, project ${project}; surface ${surface}.`),
    tail.element,
    cursorSection((stream) => streamSection.open(stream)),
    streamSection.element,
  );
  return { leave: () => tail.stop() };
}

/** The live tail: follow from a little before the head, pause and resume where it stopped. */
function tailSection() {
  const list = h("ol", { id: "tail", class: "tail", "aria-label": "Live events, oldest first" });
  const state = h("p", { id: "tail-state", class: "line", "aria-live": "polite" });
  const pauseButton = h("button", { type: "button", id: "tail-pause", disabled: true, onclick: () => pause() }, "Pause");
  const resumeButton = h("button", { type: "button", id: "tail-resume", class: "secondary", disabled: true, onclick: () => resume() }, "Resume");
  /** @type {ReturnType<typeof follow> | null} */
  let follower = null;
  let position = 0; // the last event shown
  let paused = false;
  let lastProblem = "";
  let connectionsAtProblem = 0;
  let received = 0;
  let stateDue = false;

  const getTicket = () => call({ path: "/v1/stream-tickets", method: "POST", body: { ttl_seconds: TICKET_SECONDS }, data: true });

  /** @param {any} event */
  const onEvent = (event) => {
    position = event.position;
    received += 1;
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.append(
      h(
        "li",
        { "data-position": event.position, "data-id": event.id },
        h("span", { class: "pos" }, `#${event.position}`),
        " ",
        h("span", { class: "type" }, event.type),
        ` ${event.stream} v${event.version} · ${event.id} · `,
        JSON.stringify(event.data).slice(0, 300),
      ),
    );
    while (list.children.length > TAIL_KEEP) list.firstElementChild?.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
    if (!stateDue) {
      stateDue = true; // once per frame however many events a burst brings
      requestAnimationFrame(() => {
        stateDue = false;
        showState();
      });
    }
  };

  /** @param {number} after */
  const start = (after) => {
    paused = false;
    follower = follow({
      url: location.origin,
      getTicket,
      after,
      onEvent,
      onError: (/** @type {unknown} */ error) => {
        lastProblem = problemText(error);
        connectionsAtProblem = follower?.connections ?? 0;
      },
    });
    pauseButton.removeAttribute("disabled");
    resumeButton.setAttribute("disabled", "");
    showState();
  };

  const pause = () => {
    if (!follower) return;
    position = follower.position;
    follower.close();
    follower = null;
    paused = true;
    resumeButton.removeAttribute("disabled");
    pauseButton.setAttribute("disabled", "");
    showState();
    resumeButton.focus();
  };

  const resume = () => {
    start(position);
    pauseButton.focus();
  };

  const showState = () => {
    if (paused) {
      fill(state, status("paused", "idle"), h("span", {}, `at position ${position}; Resume continues after it, missing nothing`));
      return;
    }
    if (!follower) {
      fill(state, status("starting", "idle"));
      return;
    }
    const live = follower.connections > connectionsAtProblem;
    fill(
      state,
      live ? status("live", "ok") : status(follower.connections ? "reconnecting" : "connecting", "warn"),
      h("span", {}, `last position ${follower.position}`),
      h("span", {}, `${received} event(s) received`),
      h("span", {}, `${follower.connections} connection(s), ${follower.tickets} ticket(s)`),
      !live && lastProblem ? h("span", { class: "hint" }, lastProblem) : null,
    );
  };

  const ticker = every(async () => showState(), 1000);
  (async () => {
    try {
      const first = await call({ path: "/v1/events?after=0&limit=1", data: true });
      start(Math.max(first.head - TAIL_BACKLOG, 0));
    } catch (error) {
      fill(state, problem(error));
    }
  })();

  const element = h(
    "section",
    { class: "panel" },
    h("h2", {}, "Live tail"),
    h("div", { class: "line" }, pauseButton, resumeButton, h("button", { type: "button", class: "secondary", onclick: () => list.replaceChildren() }, "Clear")),
    state,
    list,
  );
  return {
    element,
    stop() {
      ticker.stop();
      follower?.close();
    },
  };
}

/**
 * Events by cursor: a page after `after`, then the next one from its `next`.
 *
 * @param {(stream: string) => void} openStream
 */
function cursorSection(openStream) {
  const out = h("div", { id: "events-page", "aria-live": "polite" });
  /** @type {Record<string, string>} */
  let asked = {};

  /** @param {Record<string, string>} values */
  async function read(values) {
    asked = values;
    const params = new URLSearchParams(query({ after: values.after ?? "0", limit: values.limit ?? "50", stream: values.stream }).slice(1));
    for (const type of (values.types ?? "").split(/[\s,]+/).filter(Boolean)) params.append("type", type);
    const page = await call({ path: `/v1/events?${params}`, data: true });
    const rows = page.events.map((/** @type {any} */ e) => [
      String(e.position),
      h("button", { type: "button", class: "secondary", onclick: () => openStream(e.stream), title: `Read stream ${e.stream}` }, e.stream),
      String(e.version),
      e.type,
      h("code", {}, e.id),
      when(e.recorded_at),
      h("pre", { class: "json" }, JSON.stringify(e.data)),
    ]);
    const more = page.next < page.head && page.events.length > 0;
    fill(
      out,
      h(
        "p",
        { class: "line" },
        `Head ${page.head}. `,
        page.events.length ? `Positions ${page.events[0].position}–${page.events.at(-1).position}.` : "No event after this cursor.",
        more ? h("button", { type: "button", onclick: () => guard(() => read({ ...asked, after: String(page.next) })) }, `Next page (after ${page.next})`) : null,
        h("button", { type: "button", class: "secondary", onclick: () => guard(() => read({ ...asked, after: "0" })) }, "First page"),
      ),
      table("Events, by position", ["position.num", "stream", "version.num", "type", "id", "recorded", "data"], rows, "none"),
    );
    return null;
  }

  /** @param {() => Promise<unknown>} task */
  const guard = async (task) => {
    try {
      await task();
    } catch (error) {
      fill(out, problem(error));
    }
  };

  return h(
    "section",
    { class: "panel" },
    h("h2", {}, "Events by cursor"),
    form(
      { class: "inline", "aria-label": "Read events" },
      [
        field("After position", h("input", { name: "after", type: "number", min: 0, value: "0" })),
        field("Limit", h("input", { name: "limit", type: "number", min: 1, max: 1000, value: "50" })),
        field("Stream", h("input", { name: "stream", autocomplete: "off" })),
        field("Types", h("input", { name: "types", autocomplete: "off" }), "comma-separated"),
      ],
      "Read",
      read,
    ),
    out,
  );
}

/** One stream's events by version. */
function streamView() {
  const out = h("div", { id: "stream-page", "aria-live": "polite" });
  const streamInput = /** @type {HTMLInputElement} */ (h("input", { name: "stream", required: true, autocomplete: "off" }));

  /** @param {Record<string, string>} values */
  async function read(values) {
    const stream = values.stream ?? "";
    const answer = await call({
      path: `/v1/streams/${encodeURIComponent(stream)}${query({ after_version: values.after_version, limit: 100 })}`,
      data: true,
    });
    fill(
      out,
      h("p", {}, `Stream ${stream} is at version ${answer.version}.`),
      table(
        `Versions of ${stream}`,
        ["version.num", "position.num", "type", "id", "recorded", "data"],
        answer.events.map((/** @type {any} */ e) => [String(e.version), String(e.position), e.type, h("code", {}, e.id), when(e.recorded_at), h("pre", { class: "json" }, JSON.stringify(e.data))]),
      ),
    );
    return null;
  }

  const section = h(
    "section",
    { class: "panel" },
    h("h2", {}, "One stream"),
    form(
      { class: "inline", "aria-label": "Read a stream" },
      [field("Stream", streamInput), field("After version", h("input", { name: "after_version", type: "number", min: 0, value: "0" }))],
      "Read stream",
      read,
    ),
    out,
  );
  return {
    element: section,
    /** @param {string} stream */
    open(stream) {
      streamInput.value = stream;
      read({ stream, after_version: "0" }).catch((error) => fill(out, problem(error)));
      section.scrollIntoView({ block: "start" });
    },
  };
}
