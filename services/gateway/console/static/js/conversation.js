// Renders a thread's timeline (from /v1/console/threads/<id>) as a person reads it: user turns, and each run
// as a block with its status, timings, model and usage, its tool calls (arguments and outputs) and its answer.

import { badge, duration, h, num, pretty, time } from "./dom.js";

export const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);
const CANCELLABLE = new Set(["queued", "in_progress", "requires_action"]);

function messageText(message, live) {
  // While a run writes a message, the read model has no text yet: the streamed deltas stand in for it.
  const streaming = message.status === "in_progress";
  const blocks = (message.content ?? []).map((block) => {
    if (block.type === "text") return block.text.value;
    if (block.type === "refusal") return `[refused] ${block.refusal}`;
    if (block.type === "image_url") return `[image: ${block.image_url?.url}]`;
    return `[${block.type}]`;
  });
  const text = blocks.length ? blocks.join("\n\n") : (live.get(message.id) ?? "");
  return h("div", { class: "text", "aria-busy": streaming ? "true" : null, dataset: { messageText: message.id } }, text);
}

export function messageEl(message, live) {
  const role = message.role === "user" ? "User" : message.role === "assistant" ? "Assistant" : message.role;
  return h("li", { class: `turn turn-${message.role}`, dataset: { messageId: message.id, role: message.role } },
    h("article", { "aria-label": `${role} message` },
      h("header", {}, h("strong", {}, role), time(message.created_at),
        message.status !== "completed" ? badge(message.status) : null),
      messageText(message, live)));
}

function toolCall(call) {
  const fn = call.function ?? {};
  return h("li", { class: "tool-call", dataset: { callId: call.id } },
    h("h3", {}, "Tool call ", h("code", {}, fn.name ?? call.type), " ", h("small", { class: "hint" }, call.id)),
    h("h4", {}, "Arguments"), h("pre", {}, pretty(fn.arguments ?? "")),
    h("h4", {}, "Output"), fn.output === null || fn.output === undefined
      ? h("p", { class: "hint" }, "Waiting for the tool's output…")
      : h("pre", {}, pretty(fn.output)));
}

function runMeta(run) {
  const ended = run.completed_at ?? run.cancelled_at ?? run.failed_at ?? null;
  const usage = run.usage;
  const pairs = [
    ["Model", h("code", {}, run.model)],
    ["Created", time(run.created_at)],
    ["Started", time(run.started_at)],
    ["Ended", time(ended)],
    ["Took", run.started_at && ended ? duration(ended - run.started_at) : "—"],
    ["Tokens", usage ? `${num(usage.prompt_tokens)} in · ${num(usage.completion_tokens)} out · `
      + `${num(usage.total_tokens)} total` : "—"],
  ];
  return h("dl", { class: "run-meta" }, pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

export function runEl(run, steps, messagesOfRun, live, onCancel) {
  const shown = new Set();
  const body = [];
  for (const step of steps) {
    const details = step.step_details;
    if (details.type === "tool_calls") body.push(...details.tool_calls.map(toolCall));
    else if (details.type === "message_creation") {
      const message = messagesOfRun.get(details.message_creation.message_id);
      if (message) { body.push(messageEl(message, live)); shown.add(message.id); }
    }
  }
  // A message whose step the projector has not applied yet still belongs on screen.
  for (const message of messagesOfRun.values()) if (!shown.has(message.id)) body.push(messageEl(message, live));
  const pending = run.required_action?.submit_tool_outputs?.tool_calls ?? [];
  const error = run.last_error ? `${run.last_error.code}: ${run.last_error.message}`
    : run.incomplete_details ? `incomplete: ${run.incomplete_details.reason}` : null;
  return h("li", { class: "run", dataset: { runId: run.id, status: run.status } },
    h("section", { "aria-label": `Run ${run.id}` },
      h("header", { class: "run-head" },
        h("h3", {}, "Run ", h("code", {}, run.id)), badge(run.status),
        CANCELLABLE.has(run.status)
          ? h("button", { type: "button", class: "secondary", dataset: { focusKey: `cancel-${run.id}` },
            onclick: (event) => onCancel(run, event.currentTarget) }, "Cancel run")
          : null),
      runMeta(run),
      error ? h("p", { class: "run-error" }, error) : null,
      pending.length ? h("p", { class: "hint" }, `Waiting for tool outputs: ${pending.map((c) => c.function.name).join(", ")}`) : null,
      h("ol", { class: "run-body" }, body)));
}

/** A Responses-API turn: its status, model, timings and usage; its items follow it in the timeline. */
export function responseEl(response) {
  const usage = response.usage;
  const ended = response.completed_at ?? null;
  const pairs = [
    ["Model", h("code", {}, response.model)],
    ["Created", time(response.created_at)],
    ["Ended", time(ended)],
    ["Took", ended ? duration(ended - response.created_at) : "—"],
    ["Tokens", usage ? `${num(usage.input_tokens)} in · ${num(usage.output_tokens)} out · `
      + `${num(usage.total_tokens)} total` : "—"],
  ];
  const error = response.error ? `${response.error.code}: ${response.error.message}`
    : response.incomplete_details ? `incomplete: ${response.incomplete_details.reason}` : null;
  return h("li", { class: "run response", dataset: { responseId: response.id, status: response.status } },
    h("section", { "aria-label": `Response ${response.id}` },
      h("header", { class: "run-head" }, h("h3", {}, "Response ", h("code", {}, response.id)), badge(response.status)),
      h("dl", { class: "run-meta" }, pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
      error ? h("p", { class: "run-error" }, error) : null));
}

/** A conversation's function call item, with its output item (matched by call_id) when there is one. */
function callItemEl(call, output) {
  return toolCall({ id: call.call_id, type: "function",
    function: { name: call.name, arguments: call.arguments, output: output?.output } });
}

/** The whole timeline as list items, assistant messages inside the run that wrote them. */
export function timelineItems(timeline, live, onCancel) {
  const runIds = new Set(timeline.entries.filter((e) => e.kind === "run").map((e) => e.run.id));
  const byRun = new Map();
  for (const entry of timeline.entries) {
    const message = entry.message;
    if (entry.kind !== "message" || !runIds.has(message?.run_id)) continue;
    if (!byRun.has(message.run_id)) byRun.set(message.run_id, new Map());
    byRun.get(message.run_id).set(message.id, message);
  }
  const items = [];
  if (timeline.truncated) items.push(h("li", { class: "hint" }, "Older turns are not shown: this thread is long."));
  const outputs = new Map(timeline.entries.filter((e) => e.kind === "item" && e.item.type === "function_call_output")
    .map((e) => [e.item.call_id, e.item]));
  const calls = new Set(timeline.entries.filter((e) => e.kind === "item" && e.item.type === "function_call")
    .map((e) => e.item.call_id));
  for (const entry of timeline.entries) {
    if (entry.kind === "run") items.push(runEl(entry.run, entry.steps, byRun.get(entry.run.id) ?? new Map(), live, onCancel));
    else if (entry.kind === "response") items.push(responseEl(entry.response));
    else if (entry.kind === "item" && entry.item.type === "function_call") {
      items.push(callItemEl(entry.item, outputs.get(entry.item.call_id)));
    } else if (entry.kind === "item") {  // an output whose call is older than the page shows
      if (!calls.has(entry.item.call_id)) items.push(h("li", { class: "tool-call" }, h("h4", {}, "Tool output"), h("pre", {}, pretty(entry.item.output))));
    } else if (!runIds.has(entry.message.run_id)) items.push(messageEl(entry.message, live));
  }
  if (!items.length) items.push(h("li", { class: "hint" }, "No messages yet."));
  return items;
}
