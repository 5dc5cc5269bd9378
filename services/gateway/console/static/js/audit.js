// The audit view: every event of the thread (position, type, time, payload) and the hash-chain check.

import { api } from "./api.js";
import { errorBox, flash, h, pretty, sleep, time } from "./dom.js";

const PAGE = 100;
// The sealer extends the chain about once a second; re-check while fresh events wait for it.
const RECHECK_MS = 1500;
const RECHECKS = 20;

function eventItem(event) {
  return h("li", { dataset: { version: event.stream_version, type: event.type } },
    h("details", {},
      h("summary", {},
        h("span", { class: "ev-v", title: "stream version" }, `v${event.stream_version}`),
        h("code", { class: "ev-type" }, event.type),
        time(Math.floor(event.recorded_at)),
        h("span", { class: "ev-pos", title: "global log position" }, `#${event.position}`),
        event.redacted ? h("span", { class: "badge status-none" }, "redacted") : null),
      h("pre", {}, pretty(JSON.stringify(event.data)))));
}

function chainReport(report) {
  const state = report.ok ? (report.unsealed ? "pending" : "ok") : "failed";
  const head = report.head_hash ? h("p", { class: "hint" }, `Chain head for this thread: seq ${report.head_seq}, `,
    h("code", { title: report.head_hash }, `${report.head_hash.slice(0, 16)}…`)) : null;
  const verdict = report.ok
    ? `✓ Chain check passed: ${report.sealed} of ${report.events} events sealed`
      + (report.unsealed ? `, ${report.unsealed} not yet sealed` : "")
    : `✗ Chain check failed: ${report.problems.length} problem(s)`;
  return [state, [h("p", {}, h("strong", {}, verdict)), head,
    report.problems.length ? h("ul", {}, report.problems.map((p) => h("li", {},
      h("code", {}, p.kind), ` at position ${p.position}: ${p.detail}`))) : null]];
}

export function auditPanel(threadId, signal) {
  const id = encodeURIComponent(threadId);
  const chain = h("div", { class: "chain", "data-state": "checking", role: "status" }, "Checking the hash chain…");
  const recheck = h("button", { type: "button", class: "secondary" }, "Check chain again");
  const list = h("ol", { class: "events", "aria-label": "Events, oldest first" });
  const more = h("button", { type: "button", class: "secondary more", hidden: true }, "Load more events");
  const el = h("section", { class: "panel audit", "aria-labelledby": "audit-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "audit-title" }, "Event history"), recheck),
    chain, list, more);
  const seen = new Set();
  let after = null;
  let complete = false;
  let checking = null;

  function add(event) {
    if (seen.has(event.stream_version)) return;
    seen.add(event.stream_version);
    list.append(eventItem(event));
  }

  async function loadPage() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (after) q.set("after", after);
    const page = await api(`/threads/${id}/history?${q}`, { signal });
    page.data.forEach(add);
    after = page.last_id ?? after;
    complete = !page.has_more;
    more.hidden = complete;
  }

  async function checkOnce() {
    const report = await api(`/console/threads/${id}/chain`, { signal });
    const [state, children] = chainReport(report);
    chain.dataset.state = state;
    chain.replaceChildren(...children.filter(Boolean));
    return report;
  }

  async function check() {
    try {
      for (let i = 0; i < RECHECKS && !signal.aborted; i++) {
        const report = await checkOnce();
        if (!report.ok || !report.unsealed) return;
        await sleep(RECHECK_MS, signal);
      }
    } catch (error) {
      if (!signal.aborted) chain.replaceChildren(errorBox(error));
    }
  }

  function scheduleCheck() {
    checking ??= sleep(RECHECK_MS, signal).then(check).finally(() => { checking = null; });
  }

  recheck.addEventListener("click", () => check());
  more.addEventListener("click", () => loadPage().catch((error) => flash(`Could not load events: ${error.message}`)));
  return {
    el,
    async load() { await loadPage(); check(); },
    /** A live event from the thread's stream: shown at once if the list has reached the end. */
    onEvent(event) {
      if (complete) add(event);
      scheduleCheck();
    },
  };
}
