// The console's shell: sign-in, who is signed in, and a hash router (#/threads, #/threads/<id>, #/usage).
// Each view gets an AbortSignal that fires when the reader navigates away, closing its fetches and streams.

import { api, clearKey, getKey, setKey, whenUnauthorized } from "./api.js";
import { errorBox, flash } from "./dom.js";
import { threadPage } from "./thread.js";
import { threadsPage } from "./threads.js";
import { usagePage } from "./usage.js";

const $ = (id) => document.getElementById(id);
const view = $("view");
let current = null;
let principal = null;

function showSignIn(message = "") {
  current?.abort();
  principal = null;
  view.replaceChildren();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("api-key").focus();
}

async function whoAmI() {
  principal = await api("/console/me");
  $("who-text").textContent = principal.is_admin
    ? "Admin key: all projects"
    : `Project ${principal.project_id}`;
  $("who").hidden = false;
  $("nav").hidden = false;
  $("sign-in").hidden = true;
}

async function route() {
  current?.abort();
  if (!getKey()) return showSignIn();
  const controller = current = new AbortController();
  const { signal } = controller;
  try {
    if (!principal) await whoAmI();
  } catch (error) {
    if (error.status !== 401) showSignIn(error.message);
    return;
  }
  const [path, query] = (location.hash.slice(1) || "/threads").split("?");
  const params = new URLSearchParams(query ?? "");
  for (const link of document.querySelectorAll("[data-nav]")) {
    const active = path.startsWith(`/${link.dataset.nav}`);
    if (active) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  view.replaceChildren();
  try {
    if (path.startsWith("/threads/")) await threadPage(view, decodeURIComponent(path.slice(9)), signal, principal);
    else if (path === "/usage") await usagePage(view, signal, principal);
    else await threadsPage(view, params, signal, principal);
  } catch (error) {
    if (signal.aborted || error.status === 401) return;
    view.append(errorBox(error));
  }
}

whenUnauthorized((message) => {
  clearKey();
  showSignIn(`The key was not accepted: ${message}`);
});

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  setKey(key);
  $("api-key").value = "";
  principal = null;
  await route();
  if (principal) {
    flash("Signed in.");
    document.querySelector("#view h1")?.focus();
  }
});

$("sign-out").addEventListener("click", () => {
  clearKey();
  showSignIn();
  flash("Signed out.");
});

// On navigation, move focus to the new view's heading so keyboard and screen-reader users land on it.
window.addEventListener("hashchange", async () => {
  await route();
  document.querySelector("#view h1")?.focus();
});
route();
