/**
 * Prometheus's text exposition format, as `GET /metrics` writes it: enough of it to read samples.
 */

/** @typedef {{name: string, labels: Record<string, string>, value: number}} Sample */

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Every sample of the text, in order; comments (HELP, TYPE) and malformed lines are skipped.
 *
 * @param {string} text
 * @returns {Sample[]}
 */
export function parse(text) {
  /** @type {Sample[]} */
  const found = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    /** @type {Record<string, string>} */
    const labels = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(LABEL)) {
      labels[name] = value.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    found.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return found;
}

/**
 * The sum of a metric's samples (every label set), or null when the text has none.
 *
 * @param {Sample[]} samples
 * @param {string} name
 */
export function total(samples, name) {
  const matching = samples.filter((sample) => sample.name === name);
  return matching.length ? matching.reduce((sum, sample) => sum + sample.value, 0) : null;
}
