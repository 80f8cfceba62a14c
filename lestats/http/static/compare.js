// The comparison of two states or two groups, with the significance verdict in words.

import * as fmt from "./format.js";

function label(side, mode) {
  return mode === "location" ? side.name : side.stratum_name;
}

function amount(difference, unit) {
  const size = Math.abs(difference).toFixed(1);
  return unit === "%" ? `${size} percentage points` : `${size}${unit ? ` ${unit}` : ""}`;
}

/** The verdict of the API's `compare` answer in a few sentences. */
export function verdict(answer, mode, unit) {
  const { a, b } = answer;
  const where = mode === "location" ? `${a.stratum_name}` : `${a.name}`;
  const context = `In ${a.year}, ${where}: `;
  const sides = `${label(a, mode)} ${fmt.estimate(a, unit)}, ${label(b, mode)} ${fmt.estimate(b, unit)}.`;
  if (answer.difference === null || answer.difference === undefined) {
    return [context + sides, `No verdict: ${answer.reason || "one side has no number"}.`];
  }
  // The API's difference is b − a; the sentence speaks of the first choice, a.
  const relation = answer.difference === 0 ? "the same as"
    : `${amount(answer.difference, unit)} ${answer.difference < 0 ? "higher" : "lower"} than`;
  const significant = answer.significant
    ? "The difference is statistically significant at the 95 % level"
    : "The difference is not statistically significant at the 95 % level: it may be chance";
  const test = `(approximate z-test from the published confidence intervals: |z| = ${Math.abs(answer.z).toFixed(2)}, ${answer.p_value < 0.001 ? "p < 0.001" : `p = ${answer.p_value.toFixed(3)}`}).`;
  return [context + sides, `${label(a, mode)} is ${relation} ${label(b, mode)}. ${significant} ${test}`];
}
