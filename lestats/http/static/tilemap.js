// The map: every state, DC and the territories as equal square tiles in a grid shaped like the
// country. No shapes to ship, and Rhode Island or DC are as easy to see and to point at as Texas.

import { el, svg } from "./dom.js";
import { NO_DATA } from "./colour.js";
import * as fmt from "./format.js";

/** Each location's tile as [row, column]; territories on the last row. */
export const GRID = {
  AK: [0, 0], ME: [0, 10],
  WI: [1, 5], VT: [1, 9], NH: [1, 10],
  WA: [2, 0], ID: [2, 1], MT: [2, 2], ND: [2, 3], MN: [2, 4], IL: [2, 5], MI: [2, 6], NY: [2, 8], MA: [2, 9],
  OR: [3, 0], NV: [3, 1], WY: [3, 2], SD: [3, 3], IA: [3, 4], IN: [3, 5], OH: [3, 6], PA: [3, 7], NJ: [3, 8],
  CT: [3, 9], RI: [3, 10],
  CA: [4, 0], UT: [4, 1], CO: [4, 2], NE: [4, 3], MO: [4, 4], KY: [4, 5], WV: [4, 6], VA: [4, 7], MD: [4, 8],
  DE: [4, 9],
  AZ: [5, 1], NM: [5, 2], KS: [5, 3], AR: [5, 4], TN: [5, 5], NC: [5, 6], SC: [5, 7], DC: [5, 8],
  OK: [6, 3], LA: [6, 4], MS: [6, 5], AL: [6, 6], GA: [6, 7],
  HI: [7, 0], TX: [7, 3], FL: [7, 8],
  GU: [8, 0], PR: [8, 9], VI: [8, 10],
};

const TILE = 52;
const GAP = 4;
const STEP = TILE + GAP;
const COLUMNS = 11;

/** Where each location sits: the grid's place, or a spare row for one the grid does not know. */
function places(locations) {
  const spare = [];
  const placed = new Map();
  for (const loc of locations) {
    if (GRID[loc.location]) placed.set(loc.location, GRID[loc.location]);
    else spare.push(loc.location);
  }
  spare.forEach((code, i) => placed.set(code, [9 + Math.floor(i / COLUMNS), i % COLUMNS]));
  return placed;
}

/**
 * Draw the map into `container`.
 * `locations`: the non-national locations ({location, name}); `rows`: ranking rows by location;
 * `noData`: the ranking's no_data entries by location; `colours`: the scale; `unit`;
 * `selected`: the chosen location or null; `onFocus(code)` and `onChoose(code)`: callbacks.
 */
export function drawMap(container, { locations, rows, noData, colours, unit, selected, onFocus, onChoose }) {
  const placed = places(locations);
  const height = (Math.max(...[...placed.values()].map(([r]) => r)) + 1) * STEP;
  const tooltip = document.getElementById("tooltip");
  const tiles = new Map();
  const chart = svg("svg", {
    viewBox: `0 0 ${COLUMNS * STEP} ${height}`,
    role: "group",
    "aria-label": "Map of the states and territories; use the arrow keys to move between them",
    class: "tilemap",
    tabindex: -1,
  });
  chart.append(
    svg("defs", {},
      svg("pattern", { id: "no-data-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
        patternTransform: "rotate(45)" },
        svg("rect", { width: 6, height: 6, fill: NO_DATA }),
        svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#9a9a9a", "stroke-width": 2 }))));

  const describe = (code) => {
    const loc = locations.find((l) => l.location === code);
    const row = rows.get(code);
    if (row) return `${loc.name}: ${fmt.estimate(row, unit)}; rank ${row.rank} of ${rows.size}`;
    const missing = noData.get(code);
    const reason = missing && missing.reason !== "no data" ? ` (${missing.reason})` : "";
    return `${loc.name}: no data${reason}`;
  };

  for (const loc of locations) {
    const [r, c] = placed.get(loc.location);
    const row = rows.get(loc.location);
    const hasValue = row !== undefined;
    const fill = hasValue ? colours.colour(row.value) : "url(#no-data-hatch)";
    const ink = hasValue ? colours.ink(row.value) : "#333";
    const tile = svg("g", {
      class: `tile${hasValue ? "" : " no-data"}${loc.location === selected ? " selected" : ""}`,
      transform: `translate(${c * STEP + GAP / 2}, ${r * STEP + GAP / 2})`,
      tabindex: -1,
      role: "button",
      "data-location": loc.location,
      "data-value": hasValue ? row.value : null,
      "aria-label": describe(loc.location),
    },
      svg("rect", { width: TILE, height: TILE, rx: 4, fill, class: "tile-fill" }),
      svg("text", { x: TILE / 2, y: 22, "text-anchor": "middle", fill: ink, class: "tile-code" }, loc.location),
      svg("text", { x: TILE / 2, y: 40, "text-anchor": "middle", fill: ink, class: "tile-value" },
        hasValue ? fmt.value(row.value, "").trim() : "—"));
    tile.append(svg("title", {}, describe(loc.location)));
    tiles.set(loc.location, { tile, r, c });
    chart.append(tile);
  }

  const show = (code, near) => {
    tooltip.textContent = describe(code);
    tooltip.hidden = false;
    const box = container.getBoundingClientRect();
    const at = near.getBoundingClientRect();
    tooltip.style.left = `${at.left - box.left + at.width / 2}px`;
    tooltip.style.top = `${at.top - box.top}px`;
  };
  const focusTile = (code) => {
    for (const [other, { tile }] of tiles) tile.setAttribute("tabindex", other === code ? 0 : -1);
    tiles.get(code).tile.focus();
  };
  const first = selected && tiles.has(selected) ? selected : [...tiles.keys()][0];
  if (first) tiles.get(first).tile.setAttribute("tabindex", 0);

  chart.addEventListener("mouseover", (event) => {
    const tile = event.target.closest(".tile");
    if (tile) show(tile.dataset.location, tile);
  });
  chart.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  chart.addEventListener("focusin", (event) => {
    const tile = event.target.closest(".tile");
    if (!tile) return;
    show(tile.dataset.location, tile);
    onFocus(tile.dataset.location, describe(tile.dataset.location));
  });
  chart.addEventListener("focusout", () => { tooltip.hidden = true; });
  chart.addEventListener("click", (event) => {
    const tile = event.target.closest(".tile");
    if (tile) onChoose(tile.dataset.location);
  });
  chart.addEventListener("keydown", (event) => {
    const tile = event.target.closest(".tile");
    if (!tile) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onChoose(tile.dataset.location);
      return;
    }
    const next = neighbour(tiles, tile.dataset.location, event.key);
    if (next) {
      event.preventDefault();
      focusTile(next);
    }
  });

  container.replaceChildren(chart);
}

const DIRECTIONS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

/** The tile reached from `code` by an arrow key: the nearest one that way, or null. */
function neighbour(tiles, code, key) {
  const direction = DIRECTIONS[key];
  if (!direction) return null;
  const [dr, dc] = direction;
  const { r, c } = tiles.get(code);
  let best = null;
  let bestCost = Infinity;
  for (const [other, place] of tiles) {
    const along = dr ? (place.r - r) * dr : (place.c - c) * dc;
    const across = dr ? Math.abs(place.c - c) : Math.abs(place.r - r);
    if (other === code || along <= 0) continue;
    const cost = along + across * 3;
    if (cost < bestCost) {
      bestCost = cost;
      best = other;
    }
  }
  return best;
}

/** The legend: the gradient from the lowest to the highest value, and the "no data" swatch. */
export function drawLegend(container, colours, unit) {
  const ticks = [colours.min, (colours.min + colours.max) / 2, colours.max];
  container.replaceChildren(
    el("div", { class: "legend-scale" },
      el("div", { class: "legend-bar", style: `background: linear-gradient(to right, ${colours.gradient()})` }),
      el("div", { class: "legend-ticks" }, ticks.map((t) => el("span", {}, fmt.value(t, unit))))),
    el("div", { class: "legend-missing" },
      el("span", { class: "swatch no-data-swatch", "aria-hidden": "true" }), "no data (suppressed or not asked)"));
}
