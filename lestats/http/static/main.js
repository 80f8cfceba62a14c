// The page: reads its state from the URL, asks the v2 API, draws the map, the ranking, the trend
// and the comparison, and writes every choice back to the URL (shareable; Back undoes it).

import { query, queryUrl } from "./api.js";
import { scale } from "./colour.js";
import { verdict } from "./compare.js";
import { fillSelect } from "./dom.js";
import { drawRanking } from "./ranking.js";
import { drawLegend, drawMap } from "./tilemap.js";
import { drawTrend } from "./trend.js";

const $ = (id) => document.getElementById(id);
const NATIONAL = "US";
const PARAMS = ["q", "year", "stratum", "state", "cmp", "a", "b", "sort", "desc"];

let catalogue = null;
let drawing = 0;

/** The page's state as the URL says it, every missing or unknown part at its default. */
function stateFromUrl() {
  const url = new URLSearchParams(window.location.search);
  const raw = Object.fromEntries(PARAMS.map((p) => [p, url.get(p)]));
  const question = catalogue.questions.find((q) => q.id === raw.q) || catalogue.defaultQuestion;
  const years = question.years;
  const year = years.includes(Number(raw.year)) ? Number(raw.year) : years[years.length - 1];
  const stratum = catalogue.strata.has(raw.stratum) ? raw.stratum : catalogue.total;
  const state = catalogue.places.has(raw.state) && raw.state !== NATIONAL ? raw.state : null;
  const cmp = raw.cmp === "stratum" ? "stratum" : "location";
  const pool = cmp === "location" ? catalogue.places : catalogue.strata;
  const [defaultA, defaultB] = cmp === "location" ? [state || catalogue.firstState, NATIONAL] : catalogue.strataPair;
  const a = pool.has(raw.a) ? raw.a : defaultA;
  const b = pool.has(raw.b) ? raw.b : defaultB;
  const sort = ["rank", "name", "value", "low", "sample_size"].includes(raw.sort) ? raw.sort : "rank";
  return { q: question.id, year, stratum, state, cmp, a, b, sort, desc: raw.desc === "1" };
}

function urlOf(state) {
  const search = new URLSearchParams();
  for (const p of PARAMS) {
    const value = p === "desc" ? (state.desc ? "1" : null) : state[p];
    if (value !== null && value !== undefined) search.set(p, String(value));
  }
  return `${window.location.pathname}?${search}`;
}

/** Move to a new state: a new history entry, then draw it. */
function go(changes) {
  const next = { ...stateFromUrl(), ...changes };
  if (changes.q && !changes.year) {
    const years = catalogue.questions.find((q) => q.id === next.q).years;
    if (!years.includes(next.year)) next.year = years[years.length - 1];
  }
  if (changes.cmp) {
    const pair = changes.cmp === "location" ? [next.state || catalogue.firstState, NATIONAL] : catalogue.strataPair;
    [next.a, next.b] = pair;
  }
  window.history.pushState(null, "", urlOf(next));
  draw();
}

function showError(error) {
  $("error").textContent = `Could not load the data: ${error.message}`;
  $("error").hidden = false;
}

async function loadCatalogue() {
  const [questions, locations, strata] = await Promise.all(["questions", "locations", "strata"].map((k) => query(k)));
  const places = new Map(locations.data.map((l) => [l.location, l]));
  const strataById = new Map();
  for (const category of strata.data) {
    for (const s of category.strata) strataById.set(s.stratum, { ...s, category: category.name });
  }
  const all = [...strataById.values()];
  const total = (all.find((s) => s.stratum === "OVERALL") || all.find((s) => s.name === "Total") || all[0]).stratum;
  const pairable = strata.data.find((c) => c.strata.length >= 2 && !c.strata.some((s) => s.stratum === total));
  const usable = questions.data.filter((q) => q.years.length);
  return {
    questions: usable,
    defaultQuestion: usable.find((q) => /obesity/i.test(q.text)) || usable[0],
    places,
    mapped: locations.data.filter((l) => l.kind !== "national"),
    firstState: locations.data.find((l) => l.kind === "state").location,
    strata: strataById,
    strataGroups: strata.data,
    total,
    strataPair: pairable ? [pairable.strata[0].stratum, pairable.strata[1].stratum] : [total, total],
  };
}

function fillControls(state) {
  fillSelect($("question"), catalogue.questions.map((q) => ({ value: q.id, label: q.text, group: q.topic })), state.q);
  const question = catalogue.questions.find((q) => q.id === state.q);
  fillSelect($("year"), [...question.years].reverse().map((y) => ({ value: String(y), label: String(y) })), String(state.year));
  const strata = catalogue.strataGroups.flatMap((c) => c.strata.map((s) => ({ value: s.stratum, label: s.name, group: c.name })));
  fillSelect($("stratum"), strata, state.stratum);
  const compareOptions = state.cmp === "location"
    ? [...catalogue.places.values()].map((l) => ({ value: l.location, label: l.name }))
    : strata;
  for (const side of ["a", "b"]) fillSelect($(`compare-${side}`), compareOptions, state[side]);
  for (const radio of document.querySelectorAll("input[name=cmp]")) radio.checked = radio.value === state.cmp;
  $("compare-a-label").textContent = state.cmp === "location" ? "First state" : "First group";
  $("compare-b-label").textContent = state.cmp === "location" ? "Second state" : "Second group";
}

/** Draw the page for the URL's state; a later draw makes an unfinished earlier one give up. */
async function draw() {
  const mine = ++drawing;
  const state = stateFromUrl();
  const stale = () => mine !== drawing;
  $("error").hidden = true;
  fillControls(state);
  const question = catalogue.questions.find((q) => q.id === state.q);
  const stratum = catalogue.strata.get(state.stratum);
  const rankingParams = { question: state.q, year: state.year, stratum: state.stratum };
  const focused = focusKey();
  try {
    const [ranking, trend, comparison] = await Promise.all([
      query("ranking", rankingParams),
      state.state ? query("trend", { question: state.q, location: [state.state, NATIONAL], stratum: state.stratum }) : null,
      query("compare", compareParams(state)),
    ]);
    if (stale()) return;
    const unit = ranking.meta.unit ?? question.unit ?? "";
    drawOverview(state, question, stratum, ranking, unit);
    drawTrendPanel(state, trend, unit);
    const [context, words] = verdict(comparison.data, state.cmp, unit);
    $("verdict").replaceChildren(context, document.createElement("br"), words);
    $("source").textContent = ranking.meta.source ? `Source: ${ranking.meta.source}.` : "";
    $("caveat").textContent = ranking.meta.caveat || "";
    if (focused) document.querySelector(focused)?.focus();
  } catch (error) {
    if (!stale()) showError(error);
  } finally {
    if (!stale()) drawn();
  }
}

/** A selector for the focused control when a draw will replace it, to give focus back after. */
function focusKey() {
  const active = document.activeElement;
  const tile = active?.closest?.("#map .tile");
  if (tile) return `#map .tile[data-location="${tile.dataset.location}"]`;
  if (active?.dataset?.sort) return `#ranking button[data-sort="${active.dataset.sort}"]`;
  const row = active?.closest?.("#ranking tbody tr");
  if (row) return `#ranking tr[data-location="${row.dataset.location}"] button`;
  return null;
}

/** Mark a finished draw: `data-draws` counts them (tests wait on it), "drawn" times the first. */
function drawn() {
  const root = document.documentElement;
  root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
  if (!performance.getEntriesByName("drawn").length) performance.mark("drawn");
}

function compareParams(state) {
  const base = { question: state.q, year: state.year };
  return state.cmp === "location"
    ? { ...base, location: [state.a, state.b], stratum: state.stratum }
    : { ...base, location: state.state || NATIONAL, stratum: [state.a, state.b] };
}

function drawOverview(state, question, stratum, ranking, unit) {
  const data = ranking.data;
  const rows = new Map(data.rows.map((r) => [r.location, r]));
  const noData = new Map(data.no_data.map((r) => [r.location, r]));
  const values = data.rows.map((r) => r.value);
  const colours = values.length ? scale(Math.min(...values), Math.max(...values)) : scale(0, 1);
  const group = stratum ? `${stratum.category === stratum.name ? "" : `${stratum.category}: `}${stratum.name}` : state.stratum;
  $("map-title").textContent = `${question.text} (${data.year}, ${group})`;
  drawMap($("map"), {
    locations: catalogue.mapped,
    rows,
    noData,
    colours,
    unit,
    selected: state.state,
    onFocus: (_, text) => { $("details").textContent = text; },
    onChoose: choose,
  });
  drawLegend($("legend"), colours, unit);
  drawRanking($("ranking"), {
    ranking: data,
    unit,
    sort: { key: state.sort, descending: state.desc },
    selected: state.state,
    onSort: (sort) => go({ sort: sort.key, desc: sort.descending }),
    onChoose: choose,
  });
  const ref = data.reference;
  $("reference").textContent = ref && ref.value != null
    ? `${ref.name}: ${ref.value.toFixed(1)}${unit === "%" ? " %" : ` ${unit}`} (95 % CI ${ref.low.toFixed(1)}–${ref.high.toFixed(1)})`
    : "";
  $("csv").href = queryUrl("ranking", { question: state.q, year: state.year, stratum: state.stratum }, "csv");
  $("csv").setAttribute("download", `ranking-${state.q}-${state.year}-${state.stratum}.csv`);
}

/** Choosing a state shows its trend, and compares it (when comparing states) with the other. */
function choose(code) {
  const state = stateFromUrl();
  go(state.cmp === "location" ? { state: code, a: code } : { state: code });
}

function drawTrendPanel(state, trend, unit) {
  $("trend-table-box").hidden = !trend;
  if (!trend) {
    $("trend-title").textContent = "Trend";
    $("trend-hint").hidden = false;
    $("trend").replaceChildren();
    return;
  }
  const place = catalogue.places.get(state.state);
  $("trend-title").textContent = `Trend: ${place.name} and the United States`;
  $("trend-hint").hidden = true;
  drawTrend($("trend"), $("trend-table"), trend.data, unit);
}

function listen() {
  $("question").addEventListener("change", (e) => go({ q: e.target.value }));
  $("year").addEventListener("change", (e) => go({ year: Number(e.target.value) }));
  $("stratum").addEventListener("change", (e) => go({ stratum: e.target.value }));
  for (const radio of document.querySelectorAll("input[name=cmp]")) {
    radio.addEventListener("change", (e) => go({ cmp: e.target.value }));
  }
  $("compare-a").addEventListener("change", (e) => go({ a: e.target.value }));
  $("compare-b").addEventListener("change", (e) => go({ b: e.target.value }));
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("compare").addEventListener("submit", (e) => e.preventDefault());
  window.addEventListener("popstate", draw);
}

async function start() {
  try {
    catalogue = await loadCatalogue();
  } catch (error) {
    showError(error);
    drawn();
    return;
  }
  window.history.replaceState(null, "", urlOf(stateFromUrl()));
  listen();
  await draw();
}

start();
