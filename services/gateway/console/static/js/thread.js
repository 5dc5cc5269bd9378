// A thread's page: summary, actions, the conversation (live while a run is under way) and the audit view.
//
// Live updates: /v1/threads/<id>/events follows the thread's log; each event refreshes the timeline from the
// read models, and a run that starts is attached with /runs/<run>/stream, whose thread.message.delta events
// paint the answer token by token before the read model has any of its text.

import { api, sse } from "./api.js";
import { auditPanel } from "./audit.js";
import { ACTIVE, timelineItems } from "./conversation.js";
import { badge, flash, h, num, sleep, time } from "./dom.js";

const REFRESH_MS = 120;
// The read models trail the log by milliseconds: refresh once more after a burst, to catch the last of it.
const SETTLE_MS = 800;

export async function threadPage(root, threadId, signal, principal) {
  const id = encodeURIComponent(threadId);
  const live = new Map();  // message id -> text streamed so far
  const attached = new Set();  // runs whose stream is open (or done): each is read once
  let timeline = null;

  const summary = h("dl", { class: "summary" });
  const conversation = h("ol", { class: "timeline", "aria-label": "Conversation" });
  const liveMark = h("span", { class: "live", hidden: true }, "● live");
  const audit = auditPanel(threadId, signal);
  const actions = h("div", { class: "actions" });
  // Nothing is shown until the thread is known to exist and be visible to this key: a 404 shows only the error.
  const head = await api(`/threads/${id}/history?order=desc&limit=1`, { signal });
  timeline = await api(`/console/threads/${id}`, { signal });
  conversation.dataset.threadId = threadId;
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/threads" }, "Threads"), " › ", threadId),
    h("h1", { tabindex: -1 }, "Thread ", h("code", {}, threadId)),
    summary, actions,
    h("div", { class: "thread-layout" },
      h("section", { class: "panel", "aria-labelledby": "conversation-title" },
        h("div", { class: "panel-head" }, h("h2", { id: "conversation-title" }, "Conversation"), liveMark),
        conversation),
      audit.el));

  function paintSummary(s) {
    const item = (label, value) => h("div", {}, h("dt", {}, label), h("dd", {}, value));
    summary.replaceChildren(...[
      principal.is_admin ? item("Project", h("code", {}, s.project_id)) : null,
      item("Created", time(s.created_at)), item("Last activity", time(s.last_activity_at)),
      item("Messages", num(s.message_count)), item("Runs", num(s.run_count)),
      item("Tokens used", num(s.total_tokens)), item("Last run", badge(s.last_run?.status)),
      item("Metadata", Object.keys(s.metadata).length
        ? h("span", { class: "chips" }, Object.entries(s.metadata).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)))
        : "none"),
    ].filter(Boolean));
  }

  function paint() {
    // Re-rendering must not throw the keyboard user out: put focus back on the same control if it still exists.
    const focusKey = document.activeElement?.dataset?.focusKey;
    paintSummary(timeline.summary);
    conversation.replaceChildren(...timelineItems(timeline, live, cancelRun));
    if (focusKey) conversation.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
    const running = timeline.entries.filter((e) => e.kind === "run" && ACTIVE.has(e.run.status));
    liveMark.hidden = !running.length;
    running.forEach((e) => attachRun(e.run.id));
  }

  let refreshing = null;
  let queued = false;
  async function refresh() {
    if (refreshing) { queued = true; return refreshing; }
    refreshing = (async () => {
      try {
        timeline = await api(`/console/threads/${id}`, { signal });
        paint();
      } catch (error) {
        if (error.status === 404) gone();
        else if (!signal.aborted) flash(`Could not refresh: ${error.message}`);
      } finally {
        refreshing = null;
      }
      if (queued) { queued = false; await refresh(); }
    })();
    return refreshing;
  }

  // A throttle, not a debounce: events can come every few milliseconds for as long as a run lasts, and a timer
  // reset by each of them would never fire. The trailing settle refresh is the one that is pushed back.
  let timer = 0;
  let settle = 0;
  signal.addEventListener("abort", () => { clearTimeout(timer); clearTimeout(settle); }, { once: true });
  function scheduleRefresh() {
    timer ||= setTimeout(() => { timer = 0; refresh(); }, REFRESH_MS);
    clearTimeout(settle);
    settle = setTimeout(refresh, SETTLE_MS);
  }

  function paintDelta(messageId) {
    const el = conversation.querySelector(`[data-message-text="${CSS.escape(messageId)}"]`);
    if (el) el.textContent = live.get(messageId);
    else scheduleRefresh();  // the message itself is not on screen yet
  }

  async function attachRun(runId) {
    if (attached.has(runId) || signal.aborted) return;
    attached.add(runId);
    let last = null;
    for (let attempt = 0; attempt < 5 && !signal.aborted; attempt++) {
      try {
        const resume = last ? `?after=${encodeURIComponent(last)}` : "";
        for await (const message of sse(`/threads/${id}/runs/${encodeURIComponent(runId)}/stream${resume}`, signal)) {
          last = message.id ?? last;
          if (message.event === "thread.message.delta") {
            const delta = JSON.parse(message.data);
            const text = delta.delta.content.map((c) => c.text?.value ?? "").join("");
            live.set(delta.id, (live.get(delta.id) ?? "") + text);
            paintDelta(delta.id);
          } else if (message.event !== "done" && !message.event.endsWith(".delta")) {
            scheduleRefresh();
          }
        }
        break;  // the server ended the stream: the run is over
      } catch (error) {
        if (signal.aborted) return;
        if (error.status === 404) { attached.delete(runId); return; }  // not visible (yet): paint() retries
        await sleep(1000, signal);
      }
    }
    scheduleRefresh();
  }

  async function follow(afterVersion) {
    let version = afterVersion;
    while (!signal.aborted) {
      try {
        for await (const message of sse(`/threads/${id}/events?after=${version}`, signal)) {
          const event = JSON.parse(message.data);
          version = event.stream_version;
          audit.onEvent(event);
          if (event.type === "thread.deleted") return gone();
          // A new run is attached by paint(), once the read model has it: the log is ahead of the read
          // model, and the run's stream route answers 404 for a run it cannot see yet.
          scheduleRefresh();
        }
      } catch (error) {
        if (signal.aborted || error.status === 404) return;
      }
      await sleep(1000, signal);  // the gateway went away: reconnect where we were
    }
  }

  function gone() {
    liveMark.hidden = true;
    conversation.replaceChildren(h("li", { class: "hint" }, "This thread has been deleted."));
    actions.replaceChildren();
  }

  async function cancelRun(run, button) {
    button.disabled = true;
    try {
      await api(`/threads/${id}/runs/${encodeURIComponent(run.id)}/cancel`, { method: "POST", signal });
      flash(`Cancelling run ${run.id}.`);
      scheduleRefresh();
    } catch (error) {
      button.disabled = false;
      flash(`Could not cancel: ${error.message}`);
    }
  }

  actions.append(metadataEditor(() => timeline.summary.metadata, async (metadata) => {
    await api(`/threads/${id}`, { method: "POST", body: { metadata }, signal });
    flash("Metadata saved.");
    await refresh();
  }), deleteButton(threadId, async () => {
    await api(`/threads/${id}`, { method: "DELETE", signal });
    flash(`Thread ${threadId} deleted.`);
    location.hash = "#/threads";
  }));

  paint();
  await audit.load();
  // From the head version read before the timeline: anything appended since arrives through the stream.
  follow(head.data[0]?.stream_version ?? 0);
}

function metadataEditor(current, save) {
  const rows = h("div");
  const error = h("p", { class: "error", role: "alert" });
  let n = 0;
  function addRow(key = "", value = "") {
    n += 1;
    const row = h("div", { class: "meta-row" },
      h("input", { "aria-label": `Key ${n}`, name: "key", value: key, maxlength: 64 }),
      h("input", { "aria-label": `Value ${n}`, name: "value", value, maxlength: 512 }),
      h("button", { type: "button", class: "secondary", "aria-label": `Remove pair ${n}`, onclick: () => row.remove() }, "Remove"));
    rows.append(row);
    return row;
  }
  const form = h("form", {},
    h("p", { class: "hint" }, "Saving replaces the thread's metadata (a thread.modified event)."),
    rows,
    h("p", {},
      h("button", { type: "button", class: "secondary", onclick: () => addRow().querySelector("input").focus() }, "Add pair"),
      " ", h("button", { type: "submit" }, "Save metadata")),
    error);
  const details = h("details", {}, h("summary", {}, "Edit metadata"), form);
  details.addEventListener("toggle", () => {
    if (!details.open) return;
    rows.replaceChildren();
    n = 0;
    const pairs = Object.entries(current());
    (pairs.length ? pairs : [["", ""]]).forEach(([k, v]) => addRow(k, v));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const metadata = {};
    for (const row of rows.children) {
      const [key, value] = row.querySelectorAll("input");
      if (key.value.trim()) metadata[key.value.trim()] = value.value;
    }
    try {
      error.textContent = "";
      await save(metadata);
      details.open = false;
    } catch (e) {
      error.textContent = e.message;
    }
  });
  return details;
}

function deleteButton(threadId, remove) {
  const error = h("p", { class: "error", role: "alert" });
  const confirm = h("button", { type: "button", class: "danger" }, "Delete thread");
  const dialog = h("dialog", { "aria-labelledby": "delete-title", "aria-describedby": "delete-text" },
    h("h2", { id: "delete-title" }, "Delete this thread?"),
    h("p", { id: "delete-text" }, "Thread ", h("code", {}, threadId), " will disappear from lists and reads. "
      + "The deletion is an event: the log keeps that it happened."),
    error,
    h("div", { class: "buttons" },
      h("button", { type: "button", class: "secondary", autofocus: true, onclick: () => dialog.close() }, "Keep it"),
      confirm));
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    try {
      await remove();
      dialog.close();
    } catch (e) {
      error.textContent = e.message;
      confirm.disabled = false;
    }
  });
  const open = h("button", { type: "button", class: "danger", onclick: () => { error.textContent = ""; dialog.showModal(); } },
    "Delete thread…");
  return h("div", {}, open, dialog);
}
