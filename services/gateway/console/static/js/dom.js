// Small DOM helpers. Everything user-supplied goes in as text nodes or attributes, never as markup.

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pad = (n) => String(n).padStart(2, "0");

/** A <time> for unix seconds, shown in the reader's local time zone (ISO in the attribute). */
export function time(seconds) {
  if (seconds === null || seconds === undefined) return h("span", { class: "hint" }, "—");
  const d = new Date(seconds * 1000);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h("time", { datetime: d.toISOString() }, text);
}

export const num = (n) => Number(n ?? 0).toLocaleString("en-US");

export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  if (seconds < 1) return "< 1 s";  // the API keeps whole seconds
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

export function badge(status) {
  const label = status ?? "no runs";
  return h("span", { class: `badge status-${status ?? "none"}`, "data-status": status ?? "none" }, label.replaceAll("_", " "));
}

export function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** Tell screen readers (and sighted users, briefly) what just happened. */
let flashTimer = 0;
export function flash(message) {
  const el = document.getElementById("flash");
  el.textContent = message;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.textContent = ""; }, 5000);
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error?.message ?? String(error));
}
