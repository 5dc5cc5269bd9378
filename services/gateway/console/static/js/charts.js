// Bar charts drawn as inline SVG (no chart library: the console must work offline and stay small).
// Each chart comes with the same numbers as a table, for screen readers and for copying.

import { h, num, s } from "./dom.js";

const WIDTH = 420;  // about the width a chart gets on screen: text stays readable

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function dataTable(rows, keyLabel, link) {
  return h("details", {},
    h("summary", {}, "Show as a table"),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, keyLabel), h("th", { scope: "col", class: "num" }, "Tokens"))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, link ? link(r) : r.label), h("td", { class: "num" }, num(r.value)))))));
}

function figure(title, svg, rows, keyLabel, link) {
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg, dataTable(rows, keyLabel, link));
}

function empty(title) {
  return h("figure", { class: "chart" }, h("figcaption", {}, title), h("p", { class: "hint" }, "No usage yet."));
}

/** Columns along a time axis (days). */
export function columnChart(title, rows, { keyLabel = "Day" } = {}) {
  if (!rows.length) return empty(title);
  const height = 200, left = 44, bottom = 24, top = 10;
  const max = niceMax(Math.max(...rows.map((r) => r.value)));
  const plotW = WIDTH - left - 8, plotH = height - top - bottom;
  const slot = plotW / rows.length;
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const labelEvery = Math.ceil(rows.length / 8);
  const y = (v) => top + plotH - (v / max) * plotH;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  const total = rows.reduce((a, r) => a + r.value, 0);
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img",
    "aria-label": `${title}: ${rows.length} days, ${num(total)} tokens in all, at most ${num(Math.max(...rows.map((r) => r.value)))} in a day` },
    ticks.map((t) => [
      s("line", { class: "grid", x1: left, x2: WIDTH - 8, y1: y(t), y2: y(t) }),
      s("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end" }, num(Math.round(t))),
    ]),
    rows.map((r, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      return s("g", {},
        s("rect", { class: "bar", x, y: y(r.value), width: barW, height: Math.max(0, top + plotH - y(r.value)) },
          s("title", {}, `${r.label}: ${num(r.value)} tokens`)),
        i % labelEvery === 0
          ? s("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle" }, r.short ?? r.label)
          : null);
    }),
    s("line", { class: "axis", x1: left, x2: WIDTH - 8, y1: top + plotH, y2: top + plotH }));
  return figure(title, svg, rows, keyLabel);
}

/** Horizontal bars, largest first (assistants, threads): each label above its bar, so long ids never clip. */
export function barChart(title, rows, { keyLabel, link } = {}) {
  if (!rows.length) return empty(title);
  const rowH = 36, right = 64;
  const height = rows.length * rowH + 4;
  const max = Math.max(...rows.map((r) => r.value), 1);
  const plotW = WIDTH - right;
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img",
    "aria-label": `${title}: ${rows.length} ${keyLabel.toLowerCase()}s; the most is ${rows[0].label} with ${num(rows[0].value)} tokens` },
    rows.map((r, i) => {
      const top = 2 + i * rowH;
      const w = Math.max(1, (r.value / max) * plotW);
      const label = r.label.length > 56 ? `${r.label.slice(0, 55)}…` : r.label;
      return s("g", {},
        s("text", { x: 0, y: top + 12 }, label),
        s("rect", { class: "bar", x: 0, y: top + 17, width: w, height: 14 },
          s("title", {}, `${r.label}: ${num(r.value)} tokens`)),
        s("text", { class: "value", x: w + 6, y: top + 28 }, num(r.value)));
    }));
  return figure(title, svg, rows, keyLabel, link);
}
