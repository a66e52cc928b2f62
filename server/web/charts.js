// The no-show analytics as charts: one horizontal bar per group, split into attended,
// no-shows, cancellations and the rest (not yet due), drawn as SVG. The same figures are
// in a table beside it, which is what a screen reader reads (the chart is hidden from it).

import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const PARTS = [
  ["attended", "Attended", "#1a7f37"],
  ["no_shows", "No-show", "#b3261e"],
  ["cancellations", "Cancelled", "#8a6d00"],
  ["open", "Not yet due", "#8c959f"],
];
const ROW = 28;
const LABEL = 90;
const WIDTH = 520;

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

const percent = (rate) => (rate === null ? "-" : `${Math.round(rate * 100)}%`);

export function outcomesChart(groups) {
  const rows = groups.map((g) => ({
    ...g, open: Math.max(0, g.bookings - g.attended - g.no_shows - g.cancellations),
  }));
  const most = Math.max(1, ...rows.map((g) => g.bookings));
  const scale = (WIDTH - LABEL - 110) / most;
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${ROW * rows.length + 30}`, class: "chart", "aria-hidden": "true",
  });
  rows.forEach((g, i) => {
    const y = i * ROW;
    chart.append(svg("text", { x: 0, y: y + 18 }, g.group));
    let x = LABEL;
    for (const [key, , colour] of PARTS) {
      const width = g[key] * scale;
      if (width > 0) chart.append(svg("rect", { x, y: y + 4, width, height: ROW - 8, fill: colour }));
      x += width;
    }
    chart.append(svg("text", { x: x + 6, y: y + 18 }, `${percent(g.no_show_rate)} no-show`));
  });
  const legendY = ROW * rows.length + 20;
  PARTS.forEach(([, name, colour], i) => {
    chart.append(svg("rect", { x: LABEL + i * 105, y: legendY - 10, width: 12, height: 12, fill: colour }));
    chart.append(svg("text", { x: LABEL + i * 105 + 16, y: legendY }, name));
  });
  const table = h("table", { className: "figures" },
    h("caption", {}, "Outcomes per group (groups under 30 are marked small: too few to compare)"),
    h("thead", {}, h("tr", {}, ["Group", "Bookings", "Attended", "No-shows", "Cancelled",
      "No-show rate", "Attendance rate"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((g) => h("tr", {},
      h("th", { scope: "row" }, g.group + (g.small ? " (small)" : "")),
      h("td", {}, g.bookings), h("td", {}, g.attended), h("td", {}, g.no_shows),
      h("td", {}, g.cancellations), h("td", {}, percent(g.no_show_rate)),
      h("td", {}, percent(g.attendance_rate))))));
  return [chart, table];
}
