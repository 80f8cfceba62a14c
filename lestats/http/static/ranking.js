// The ranking table: the map's data as text, sortable by each column.

import { el } from "./dom.js";
import * as fmt from "./format.js";

const COLUMNS = [
  { key: "rank", label: "Rank", numeric: true },
  { key: "name", label: "State", numeric: false },
  { key: "value", label: "Value", numeric: true },
  { key: "low", label: "95 % CI", numeric: true },
  { key: "sample_size", label: "Sample", numeric: true },
];

/** Rows sorted by `key` (missing values last whatever the direction), ties kept in rank order. */
function sorted(rows, key, descending) {
  const sign = descending ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = a[key];
    const y = b[key];
    if (x === y || (x == null && y == null)) return a.order - b.order;
    if (x == null) return 1;
    if (y == null) return -1;
    return (typeof x === "string" ? x.localeCompare(y) : x - y) * sign;
  });
}

/**
 * Draw the ranking into `table`: `ranking` is the API's answer, `unit` its unit, `sort` the
 * current {key, descending}; `onSort(sort)` and `onChoose(code)` are called on clicks.
 */
export function drawRanking(table, { ranking, unit, sort, selected, onSort, onChoose }) {
  const ranked = ranking.rows.map((row, order) => ({ ...row, order }));
  const missing = ranking.no_data.map((row, order) => ({ ...row, order: ranked.length + order, rank: null, value: null }));
  const body = sorted([...ranked, ...missing], sort.key, sort.descending);
  const direction = ranking.direction === "min" ? "lowest first: lower is better"
    : ranking.direction === "max" ? "highest first: higher is better" : "highest first";
  const header = COLUMNS.map((col) => {
    const active = sort.key === col.key;
    const ariaSort = active ? (sort.descending ? "descending" : "ascending") : null;
    const next = { key: col.key, descending: active ? !sort.descending : false };
    return el("th", { scope: "col", "aria-sort": ariaSort, class: col.numeric ? "num" : null },
      el("button", { type: "button", onclick: () => onSort(next), "data-sort": col.key },
        col.label, el("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (sort.descending ? " ▼" : " ▲") : "")));
  });
  const tied = new Map();
  for (const row of ranked) tied.set(row.rank, (tied.get(row.rank) || 0) + 1);
  table.replaceChildren(
    el("caption", {}, `${ranked.length} ranked, ${direction}. `,
      el("span", { class: "overlap" }, "≈"), " marks a state whose 95 % CI overlaps its neighbour's in the ranking: the order between them is not significant. ",
      "= marks a shared rank."),
    el("thead", {}, el("tr", {}, header, el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "CI overlap")))),
    el("tbody", {}, body.map((row) => {
      const overlaps = row.overlaps_previous || row.overlaps_next;
      const rank = row.rank === null ? "—" : `${row.rank}${tied.get(row.rank) > 1 ? "=" : ""}`;
      return el("tr", { "data-location": row.location, class: `${row.rank === null ? "no-data" : ""}${row.location === selected ? " selected" : ""}` },
        el("td", { class: "num" }, rank),
        el("th", { scope: "row" }, el("button", { type: "button", class: "link", onclick: () => onChoose(row.location) }, row.name)),
        el("td", { class: "num" }, row.rank === null ? noData(row.reason) : fmt.value(row.value, unit)),
        el("td", { class: "num" }, fmt.interval(row.low, row.high)),
        el("td", { class: "num" }, fmt.count(row.sample_size)),
        el("td", { class: "overlap", title: overlaps ? overlapTitle(row) : null }, overlaps ? "≈" : ""));
    })));
}

function noData(reason) {
  return reason && reason !== "no data" ? `no data (${reason})` : "no data";
}

function overlapTitle(row) {
  const sides = [row.overlaps_previous && "the one above", row.overlaps_next && "the one below"].filter(Boolean);
  return `95 % CI overlaps ${sides.join(" and ")} in the ranking`;
}
