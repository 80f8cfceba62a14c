// The colour scale: viridis, readable with every common colour-vision deficiency and in grey.

// Viridis (matplotlib's, by van der Walt and Smith) sampled at nine even steps from 0 to 1.
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#fde725"];
const STOPS = VIRIDIS.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));

/** The fill of "no data": a light grey behind a hatch, never a colour of the scale. */
export const NO_DATA = "#d9d9d9";

/** A scale from [min, max] to viridis; `colour(v)` is "rgb(r, g, b)". */
export function scale(min, max) {
  const span = max - min;
  const position = (v) => (span > 0 ? Math.min(1, Math.max(0, (v - min) / span)) : 0.5);
  const rgb = (v) => {
    const at = position(v) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(at));
    const t = at - i;
    return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * t));
  };
  return {
    min,
    max,
    colour: (v) => `rgb(${rgb(v).join(", ")})`,
    /** Black or white, whichever reads better on the colour of `v`. */
    ink: (v) => (luminance(rgb(v)) > 0.22 ? "#111" : "#fff"),
    gradient: () => VIRIDIS.map((hex, i) => `${hex} ${(i * 100) / (VIRIDIS.length - 1)}%`).join(", "),
  };
}

function luminance([r, g, b]) {
  const linear = (c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
}
