/**
 * Line charts drawn as inline SVG, from samples the pages keep in memory as they poll. No chart
 * library: a polyline per series, three grid lines, and the latest values said in words (the
 * legend and the image's label), so the chart is readable without seeing its colours.
 */

import { h } from "./ui.js";

// An XML namespace: a name, never fetched.
const SVG = "http://www.w3.org/2000/svg";
// The swatch classes .sw0… of console.css, in the same order.
export const COLOURS = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#be123c", "#0e7490", "#a16207", "#4b5563"];

/**
 * @typedef {{name: string, points: [number, number][]}} Series  points: [time ms, value]
 */

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 * @param {...(Node | string)} children
 */
function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/** A number as a label: 3, 2.5, 0.25, 1.2k. @param {number} value */
export function figure(value) {
  if (!Number.isFinite(value)) return "–";
  const size = Math.abs(value);
  if (size >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (size >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (size >= 10 || Number.isInteger(value)) return value.toFixed(0);
  return value.toFixed(size >= 1 ? 1 : 2);
}

/**
 * A chart of `series` over the last `windowMs` up to now.
 *
 * @param {{title: string, series: Series[], unit: string, windowMs: number, width?: number, height?: number,
 *          now?: number}} options
 * @returns {HTMLElement}  a <figure> with the SVG, a legend and a caption
 */
export function lineChart({ title, series, unit, windowMs, width = 720, height = 180, now = Date.now() }) {
  const left = 44;
  const right = 8;
  const top = 10;
  const bottom = 22;
  const start = since(series.map((s) => s.points), windowMs, now);
  const span = now - start;
  const all = series.flatMap((s) => s.points.filter(([t]) => t >= start).map(([, v]) => v));
  const max = Math.max(1, ...all);
  const x = (/** @type {number} */ t) => left + ((t - start) / span) * (width - left - right);
  const y = (/** @type {number} */ v) => top + (1 - v / max) * (height - top - bottom);
  const latest = series.map((s) => ({ name: s.name, value: s.points.at(-1)?.[1] }));
  const said = latest.map((l) => `${l.name} ${l.value === undefined ? "no sample" : `${figure(l.value)} ${unit}`}`).join(", ");
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${said || "no samples yet"}` },
    svg("title", {}, title),
  );
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    chart.append(
      svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), stroke: "#d0d7de", "stroke-width": 1 }),
      svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" }, figure(value)),
    );
  }
  chart.append(
    svg("text", { x: left, y: height - 6, "font-size": 11, fill: "#57606a" }, ago(span)),
    svg("text", { x: width - right, y: height - 6, "font-size": 11, fill: "#57606a", "text-anchor": "end" }, "now"),
  );
  series.forEach((s, i) => {
    const points = s.points.filter(([t]) => t >= start);
    if (points.length === 0) return;
    const colour = COLOURS[i % COLOURS.length];
    if (points.length === 1) {
      const [[t, v]] = points;
      chart.append(svg("circle", { cx: x(t), cy: y(v), r: 2.5, fill: colour }));
      return;
    }
    const path = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points: path, fill: "none", stroke: colour, "stroke-width": 2, "stroke-linejoin": "round" }));
  });
  return h(
    "figure",
    { class: "chart" },
    chart,
    h(
      "ul",
      { class: "legend" },
      latest.map((l, i) =>
        h(
          "li",
          {},
          h("span", { class: `swatch sw${i % COLOURS.length}`, "aria-hidden": "true" }),
          `${l.name}: ${l.value === undefined ? "no sample" : `${figure(l.value)} ${unit}`}`,
        ),
      ),
    ),
    h("figcaption", {}, title),
  );
}

/**
 * A small chart of one series, without axes: its min and max said beside it.
 *
 * @param {{title: string, points: [number, number][], unit: string, windowMs: number, now?: number}} options
 */
export function sparkline({ title, points, unit, windowMs, now = Date.now() }) {
  const width = 280;
  const height = 56;
  const start = since([points], windowMs, now);
  const shown = points.filter(([t]) => t >= start);
  const values = shown.map(([, v]) => v);
  const max = Math.max(1, ...values);
  const x = (/** @type {number} */ t) => 2 + ((t - start) / (now - start)) * (width - 4);
  const y = (/** @type {number} */ v) => 4 + (1 - v / max) * (height - 8);
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}, over the last ${ago(now - start)}: up to ${figure(values.length ? Math.max(...values) : 0)} ${unit}` },
    svg("title", {}, title),
    svg("line", { x1: 0, x2: width, y1: height - 4, y2: height - 4, stroke: "#d0d7de", "stroke-width": 1 }),
  );
  if (shown.length > 1) {
    const path = shown.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points: path, fill: "none", stroke: COLOURS[0], "stroke-width": 2 }));
  }
  return h(
    "figure",
    { class: "chart" },
    chart,
    h("figcaption", {}, `max ${figure(values.length ? Math.max(...values) : 0)} ${unit}, over the last ${ago(now - start).replace(/ ago$/, "")}`),
  );
}

/**
 * Where a chart starts: `windowMs` ago, or at its first sample when the page has been polling for
 * less (a chart of 20 s of samples across 10 min would be a dot), but never less than a minute.
 *
 * @param {[number, number][][]} pointLists  @param {number} windowMs  @param {number} now
 */
function since(pointLists, windowMs, now) {
  const first = Math.min(now, ...pointLists.flatMap((points) => (points.length ? [points[0][0]] : [])));
  return Math.min(now - 60_000, Math.max(now - windowMs, first));
}

/** @param {number} ms */
function ago(ms) {
  return ms >= 90_000 ? `${Math.round(ms / 60_000)} min ago` : `${Math.round(ms / 1000)} s ago`;
}

/**
 * Samples of several series kept over a window: `add(name, value)` at each poll; old ones drop.
 *
 * @param {number} windowMs
 */
export function samples(windowMs) {
  /** @type {Map<string, [number, number][]>} */
  const kept = new Map();
  return {
    /** @param {string} name @param {number} value @param {number} [at] */
    add(name, value, at = Date.now()) {
      const points = kept.get(name) ?? [];
      points.push([at, value]);
      while (points.length && points[0][0] < at - windowMs) points.shift();
      kept.set(name, points);
    },
    /** @returns {Series[]} */
    series() {
      return [...kept.entries()].map(([name, points]) => ({ name, points }));
    },
    /** @param {string} name */
    points(name) {
      return kept.get(name) ?? [];
    },
  };
}
