/**
 * Metrics (`#/metrics`): `GET /metrics` (public, Prometheus text) polled, its append counter and
 * SSE gauges turned into rates and drawn as sparklines over the last minutes. Counters start from
 * 0 when the server restarts: a counter found lower than before is a restart, not a negative rate.
 * With `spine serve --workers N`, each poll reads whichever worker answered (they are not merged).
 */

import { figure, samples, sparkline } from "./charts.js";
import { parse, total } from "./prometheus.js";
import { call } from "./session.js";
import { every, fill, h, problem, table } from "./ui.js";

export const title = "Metrics";

const WINDOW_MS = 10 * 60_000;
const POLL_MS = 2_000;

// What the cards show, from app/http/metrics.py's names: [title, metric, unit, counter?, note]
const FIGURES = /** @type {const} */ ([
  ["Append rate", "spine_appended_events_total", "events/s", true, "events durably appended"],
  ["Append requests", "spine_appends_total", "requests/s", true, "appends, every outcome"],
  ["SSE followers", "spine_sse_clients", "followers", false, "streams open now"],
  ["Events sent to followers", "spine_sse_events_sent_total", "events/s", true, "each follower reports every 64 events: the rate comes in steps"],
  ["Projection lag", "spine_projection_lag_events", "events", false, "behind the heads, every view summed"],
]);
const history = samples(WINDOW_MS); // this tab's memory: it outlives a visit to another page
/** @type {Map<string, {value: number, at: number}>} */
const previous = new Map();

/** @param {HTMLElement} root */
export function show(root) {
  const state = h("p", { class: "line", "aria-live": "polite" }, "Loading…");
  const cards = h("div", { class: "metric-cards", id: "metric-cards" });
  const all = h("div");

  async function poll() {
    let text;
    try {
      text = await call({ path: "/metrics", anonymous: true, attempts: 2 });
    } catch (error) {
      fill(state, problem(error), h("span", { class: "hint" }, "the charts keep what they had; asking again"));
      return;
    }
    const now = Date.now();
    const found = parse(String(text));
    for (const [name, metric, , counter] of FIGURES) {
      const value = total(found, metric);
      if (value === null) continue;
      if (!counter) {
        history.add(name, value, now);
        continue;
      }
      const before = previous.get(metric);
      previous.set(metric, { value, at: now });
      if (before) {
        const seconds = Math.max((now - before.at) / 1000, 0.001);
        const delta = value >= before.value ? value - before.value : value; // lower: the server restarted
        history.add(name, delta / seconds, now);
      }
    }
    fill(state, h("span", { class: "hint" }, `updated ${new Date(now).toLocaleTimeString()}, every ${POLL_MS / 1000} s`));
    fill(
      cards,
      FIGURES.map(([name, , unit, , about]) => {
        const points = history.points(name);
        const latest = points.at(-1)?.[1];
        return h(
          "section",
          { class: "card", "aria-label": name },
          h("h2", {}, name),
          h("p", { class: "hint" }, about),
          h("div", { class: "figure" }, latest === undefined ? "–" : `${figure(latest)}`, " ", h("small", {}, unit)),
          sparkline({ title: name, points, unit, windowMs: WINDOW_MS, now }),
        );
      }),
    );
    const spine = found.filter((s) => s.name.startsWith("spine_") && !/_bucket$|_created$/.test(s.name));
    fill(
      all,
      h(
        "details",
        {},
        h("summary", {}, `Every spine_ sample (${spine.length}), as scraped`),
        table(
          "Samples",
          ["metric", "labels", "value.num"],
          spine.map((s) => [s.name, Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", "), figure(s.value)]),
        ),
      ),
    );
  }

  root.append(h("h1", {}, "Metrics"), state, cards, h("section", { class: "panel" }, all));
  const ticker = every(poll, POLL_MS);
  return { leave: () => ticker.stop() };
}
