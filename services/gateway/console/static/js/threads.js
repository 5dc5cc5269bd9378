// The thread list: search by metadata, message text, last run status and creation date; newest first.
// The filters live in the URL (#/threads?…), so a search can be bookmarked, shared and undone with Back.

import { api } from "./api.js";
import { badge, flash, h, num, time } from "./dom.js";

const STATUSES = ["queued", "in_progress", "requires_action", "cancelling", "completed", "failed", "cancelled",
  "expired", "incomplete", "none"];
const PAGE = 25;

function field(label, name, attrs) {
  const id = `f-${name}`;
  return h("div", {}, h("label", { for: id }, label), h("input", { id, name, ...attrs }));
}

function filtersForm(params) {
  const status = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "Any"),
    STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s },
      s === "none" ? "No runs" : s.replaceAll("_", " "))));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter threads" },
    field("Text in messages", "q", { type: "search", value: params.get("q") ?? "", placeholder: "words or a thread id" }),
    field("Metadata key", "mk", { value: params.get("mk") ?? "user_id", autocomplete: "off" }),
    field("Metadata value", "mv", { value: params.get("mv") ?? "", autocomplete: "off", placeholder: "e.g. u_123" }),
    h("div", {}, h("label", { for: "f-status" }, "Last run status"), status),
    field("Created on or after", "from", { type: "date", value: params.get("from") ?? "" }),
    field("Created before", "to", { type: "date", value: params.get("to") ?? "" }),
    h("div", { class: "buttons" },
      h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "secondary", onclick: () => { location.hash = "#/threads"; } }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (String(value).trim()) next.set(key, String(value).trim());
    if (!next.get("mv")) next.delete("mk");
    const hash = `#/threads?${next}`;
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = hash;
  });
  return form;
}

/** A date input's day as unix seconds at the start of that day (UTC, like the usage buckets). */
const dayStart = (value) => Math.floor(Date.parse(`${value}T00:00:00Z`) / 1000);

function query(params, after) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (params.get("q")) q.set("q", params.get("q"));
  if (params.get("mv")) q.set(`metadata[${params.get("mk") || "user_id"}]`, params.get("mv"));
  if (params.get("status")) q.set("status", params.get("status"));
  if (params.get("from")) q.set("created_after", String(dayStart(params.get("from"))));
  if (params.get("to")) q.set("created_before", String(dayStart(params.get("to"))));
  if (after) q.set("after", after);
  return q;
}

function row(thread, admin) {
  const link = h("a", { href: `#/threads/${encodeURIComponent(thread.id)}` }, h("code", {}, thread.id));
  const pairs = Object.entries(thread.metadata);
  return h("tr", { dataset: { threadId: thread.id } },
    h("td", { "data-label": "Thread" }, link),
    admin ? h("td", { "data-label": "Project" }, h("code", {}, thread.project_id)) : null,
    h("td", { "data-label": "Metadata" }, pairs.length
      ? h("span", { class: "chips" }, pairs.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)))
      : h("span", { class: "hint" }, "none")),
    h("td", { class: "num", "data-label": "Messages" }, num(thread.message_count)),
    h("td", { "data-label": "Last activity" }, time(thread.last_activity_at)),
    h("td", { class: "num", "data-label": "Tokens" }, num(thread.total_tokens)),
    h("td", { "data-label": "Last run" }, badge(thread.last_run?.status)));
}

export async function threadsPage(root, params, signal, principal) {
  const admin = principal.is_admin;
  const body = h("tbody");
  const table = h("table", { class: "cards threads" },
    h("caption", { class: "visually-hidden" }, "Threads, newest first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Thread"), admin ? h("th", { scope: "col" }, "Project") : null,
      h("th", { scope: "col" }, "Metadata"), h("th", { scope: "col", class: "num" }, "Messages"),
      h("th", { scope: "col" }, "Last activity"), h("th", { scope: "col", class: "num" }, "Tokens"),
      h("th", { scope: "col" }, "Last run"))),
    body);
  const count = h("p", { class: "count", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "secondary more", hidden: true }, "Load more threads");
  root.append(h("h1", { tabindex: -1 }, "Threads"), filtersForm(params), count, table, more);

  let after = null;
  let shown = 0;
  const hash = location.hash;
  async function load() {
    more.disabled = true;
    table.setAttribute("aria-busy", "true");
    const page = await api(`/console/threads?${query(params, after)}`, { signal });
    table.setAttribute("aria-busy", "false");
    table.dataset.loaded = hash;  // which search these rows answer (scripts and tests wait on it)
    body.append(...page.data.map((t) => row(t, admin)));
    shown += page.data.length;
    after = page.last_id ?? after;
    more.hidden = !page.has_more;
    more.disabled = false;
    count.textContent = shown === 0 ? "No threads match." : `${shown}${page.has_more ? "+" : ""} threads`;
  }
  more.addEventListener("click", async () => {
    const before = body.rows.length;
    try {
      await load();
    } catch (error) {
      more.disabled = false;
      if (!signal.aborted) flash(`Could not load more threads: ${error.message}`);
      return;
    }
    body.rows[before]?.querySelector("a")?.focus();  // keep the keyboard where the new rows start
  });
  await load();
}
