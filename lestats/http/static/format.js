// Numbers and words as the page shows them.

const one = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A value with its unit: "37.7 %", or "no data". */
export function value(number, unit) {
  if (number === null || number === undefined) return "no data";
  const suffix = unit === "%" ? " %" : unit ? ` ${unit}` : "";
  return `${one.format(number)}${suffix}`;
}

/** The 95 % confidence interval: "36.6–38.8", or "" when unknown. */
export function interval(low, high) {
  if (low === null || low === undefined || high === null || high === undefined) return "";
  return `${one.format(low)}–${one.format(high)}`;
}

/** A sample size: "12,345", or "" when unknown. */
export function count(n) {
  return n === null || n === undefined ? "" : whole.format(n);
}

/** One estimate in a sentence: "37.7 % (95 % CI 36.6–38.8, n = 12,345)". */
export function estimate(row, unit) {
  if (!row || row.value === null || row.value === undefined) return "no data";
  const parts = [];
  const ci = interval(row.low, row.high);
  if (ci) parts.push(`95 % CI ${ci}`);
  if (row.sample_size !== null && row.sample_size !== undefined) parts.push(`n = ${count(row.sample_size)}`);
  return parts.length ? `${value(row.value, unit)} (${parts.join(", ")})` : value(row.value, unit);
}
