// The page's only way to the data: the public v2 GET routes of docs/queries.md.

/** The URL of a v2 query; list values repeat their parameter, `format` asks for CSV. */
export function queryUrl(kind, params = {}, format = null) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, String(one));
  }
  if (format) search.append("format", format);
  const query = search.toString();
  return `/api/v2/${kind}${query ? `?${query}` : ""}`;
}

/** An error of the API, with the reason the server gave. */
export class ApiError extends Error {}

const answers = new Map();

/** The answer (`{data, meta}`) of a v2 query; the same query is asked once per page load. */
export function query(kind, params = {}) {
  const url = queryUrl(kind, params);
  if (!answers.has(url)) {
    const asked = fetchAnswer(url);
    asked.catch(() => answers.delete(url));
    answers.set(url, asked);
  }
  return answers.get(url);
}

async function fetchAnswer(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`${url}: answered ${response.status} without JSON`);
  }
  if (!response.ok || body.status !== "done") {
    const allowed = body.allowed ? ` (allowed: ${body.allowed.slice(0, 12).join(", ")}…)` : "";
    throw new ApiError(`${body.reason || `HTTP ${response.status}`}${allowed}`);
  }
  return { data: body.data, meta: body.meta || {} };
}
