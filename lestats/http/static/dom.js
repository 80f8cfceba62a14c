// Building HTML and SVG elements without innerHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element with attributes (`onclick` etc. become listeners) and children. */
export function el(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Fill a select with options ({value, label, group}); keep `chosen` selected. */
export function fillSelect(select, options, chosen) {
  const groups = new Map();
  for (const option of options) {
    const node = el("option", { value: option.value, selected: option.value === chosen }, option.label);
    if (!option.group) {
      groups.set(option.value, node);
      continue;
    }
    if (!groups.has(`group:${option.group}`)) groups.set(`group:${option.group}`, el("optgroup", { label: option.group }));
    groups.get(`group:${option.group}`).append(node);
  }
  select.replaceChildren(...groups.values());
  select.value = chosen;
}
