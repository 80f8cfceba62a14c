// The trend of one location over the years: its line, its 95 % CI as a band, the US line for
// reference, and a gap (never a zero) for each year without a number.

import { el, svg } from "./dom.js";
import * as fmt from "./format.js";

const WIDTH = 1000;
const HEIGHT = 340;
const MARGIN = { top: 16, right: 24, bottom: 44, left: 66 };
const STYLES = [
  { line: "#1f4e9c", band: "rgba(31, 78, 156, 0.18)", dash: null },
  { line: "#c64f00", band: null, dash: "6 4" },
];

/** About five round ticks, the first at or below `min`, the last at or above `max`. */
function ticks(min, max) {
  const raw = (max - min) / 5 || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  const last = Math.ceil(max / step - 1e-9) * step;
  for (let t = Math.floor(min / step + 1e-9) * step; t <= last + step / 2; t += step) out.push(Number(t.toFixed(6)));
  return out;
}

/** Consecutive runs of points that have a number. */
function runs(points) {
  const out = [];
  let current = [];
  for (const p of points) {
    if (p.value === null || p.value === undefined) {
      if (current.length) out.push(current);
      current = [];
    } else current.push(p);
  }
  if (current.length) out.push(current);
  return out;
}

/** Draw `trend` (the API's answer; the chosen location first, then US) into `container`. */
export function drawTrend(container, tableNode, trend, unit) {
  const { years, series } = trend;
  const numbers = series.flatMap((s) => s.points.flatMap((p) => (p.value == null ? [] : [p.value, p.low ?? p.value, p.high ?? p.value])));
  if (!numbers.length) {
    container.replaceChildren(el("p", { class: "hint" }, "No year has a number for this choice."));
    drawTable(tableNode, trend, unit);
    return;
  }
  const yTicks = ticks(Math.min(...numbers), Math.max(...numbers));
  const yMin = yTicks[0];
  const yMax = yTicks[yTicks.length - 1];
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (year) => MARGIN.left + (years.length > 1 ? ((year - years[0]) / (years[years.length - 1] - years[0])) * plotW : plotW / 2);
  const y = (v) => MARGIN.top + plotH - ((v - yMin) / (yMax - yMin || 1)) * plotH;
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "trend-chart", role: "img",
    "aria-label": `Trend of ${series.map((s) => s.name).join(" and ")}, ${years[0]} to ${years[years.length - 1]}; the table below has the numbers` });

  for (const t of yTicks) {
    chart.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(t), y2: y(t), class: "grid" }),
      svg("text", { x: MARGIN.left - 8, y: y(t) + 4, "text-anchor": "end", class: "axis" }, fmt.value(t, unit)));
  }
  for (const year of years) {
    chart.append(svg("text", { x: x(year), y: HEIGHT - MARGIN.bottom + 18, "text-anchor": "middle", class: "axis" }, year));
  }

  series.forEach((s, i) => {
    const style = STYLES[Math.min(i, STYLES.length - 1)];
    const group = svg("g", { class: "series", "data-location": s.location });
    for (const run of runs(s.points)) {
      if (style.band && run.every((p) => p.low != null && p.high != null)) {
        if (run.length > 1) {
          const upper = run.map((p) => `${x(p.year)},${y(p.high)}`);
          const lower = [...run].reverse().map((p) => `${x(p.year)},${y(p.low)}`);
          group.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: style.band, class: "band" }));
        } else {
          group.append(svg("line", { x1: x(run[0].year), x2: x(run[0].year), y1: y(run[0].low), y2: y(run[0].high),
            stroke: style.band, "stroke-width": 8, class: "band" }));
        }
      }
      group.append(svg("polyline", { points: run.map((p) => `${x(p.year)},${y(p.value)}`).join(" "),
        fill: "none", stroke: style.line, "stroke-width": 2.5, "stroke-dasharray": style.dash, class: "line" }));
    }
    for (const p of s.points) {
      if (p.value == null) {
        if (i === 0) {
          group.append(svg("text", { x: x(p.year), y: HEIGHT - MARGIN.bottom - 12, "text-anchor": "middle", class: "gap" },
            "gap", svg("title", {}, `${s.name} ${p.year}: ${p.gap || "no data"}`)));
        }
        continue;
      }
      group.append(svg("circle", { cx: x(p.year), cy: y(p.value), r: 4, fill: style.line, class: "point",
        "data-year": p.year, "data-value": p.value },
        svg("title", {}, `${s.name} ${p.year}: ${fmt.estimate(p, unit)}`)));
    }
    chart.append(group);
  });

  const legend = el("ul", { class: "trend-legend" }, series.map((s, i) => {
    const style = STYLES[Math.min(i, STYLES.length - 1)];
    return el("li", {}, el("span", { class: `key${style.dash ? " dashed" : ""}`, style: `border-color: ${style.line}` }),
      s.name, i === 0 ? " (band: 95 % CI)" : " (reference)");
  }));
  container.replaceChildren(legend, chart);
  drawTable(tableNode, trend, unit);
}

function drawTable(table, trend, unit) {
  table.replaceChildren(
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Year"),
      trend.series.map((s) => el("th", { scope: "col" }, s.name)))),
    el("tbody", {}, trend.years.map((year, i) => el("tr", {},
      el("th", { scope: "row" }, year),
      trend.series.map((s) => {
        const p = s.points[i];
        return el("td", {}, p.value == null ? `gap: ${p.gap || "no data"}` : fmt.estimate(p, unit));
      })))));
}
