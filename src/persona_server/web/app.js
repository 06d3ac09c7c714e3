// The chat page: pick a persona, send the conversation, watch the answer stream in, stop it, start again.

import { ApiError, apiKey, getJSON, renewUserId, setApiKey, streamChat, userId } from "./api.js";
import { renderMarkdown, safeLink } from "./markdown.js";

const PERSONA_ITEM = "persona-server.persona";
const $ = (id) => document.getElementById(id);
const ui = {
  persona: $("persona"), about: $("persona-about"), description: $("persona-description"), chain: $("persona-chain"), log: $("log"),
  empty: $("empty"), notice: $("notice"), keyForm: $("key-form"), keyLabel: $("key-label"),
  keyInput: $("key-input"), composer: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  newChat: $("new-chat"), userId: $("user-id"), newId: $("new-id"),
};

let personas = [];
let history = []; // what the next request sends: the whole conversation (every solver handles that)
let conversation = 0; // counts new conversations: an answer that ends after one began stays out of its history
let controller = null; // the answer in progress, if any
let retry = null; // what to do once a key has been entered

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function notify(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = !message;
}

/** What to tell the person about a refusal. */
function explain(error) {
  if (!(error instanceof ApiError)) return "The server could not be reached: " + error.message;
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
    return "Limit reached: " + error.message + (/try again/i.test(error.message) ? "" : wait);
  }
  if (error.status === 413) return "That message is larger than the server accepts: " + error.message;
  if (error.status === 403) return "The server refused this page: " + error.message;
  return `Error ${error.status}: ${error.message}`;
}

function askForKey(error, then) {
  retry = then;
  ui.keyLabel.textContent = apiKey()
    ? "The server refused the API key this browser has (" + error.message + "). Enter the right one."
    : "This server needs an API key.";
  ui.keyForm.hidden = false;
  ui.keyInput.value = "";
  ui.keyInput.focus();
}

// -- personas ---------------------------------------------------------------------------------------------------

function showPersona() {
  const persona = personas.find((p) => p.id === ui.persona.value);
  ui.description.textContent = "";
  ui.chain.replaceChildren();
  ui.about.hidden = !persona;
  if (!persona) return;
  ui.description.textContent = persona.description || "No description.";
  if (persona.memory) {
    ui.description.append(" ", el("span", "memory", "Remembers earlier exchanges of this browser's id."));
  }
  for (const solver of persona.chain) {
    const item = el("li", "solver state-" + solver.state, solver.name);
    if (solver.state !== "ready") item.title = solver.state;
    ui.chain.append(item);
  }
}

async function loadPersonas() {
  try {
    personas = (await getJSON("v1/personas")).data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return askForKey(error, loadPersonas);
    return notify(explain(error));
  }
  notify("");
  const saved = localStorage.getItem(PERSONA_ITEM);
  ui.persona.replaceChildren(...personas.map((p) => new Option(p.id, p.id)));
  const chosen = personas.find((p) => p.id === saved) || personas.find((p) => p.default) || personas[0];
  if (chosen) ui.persona.value = chosen.id;
  showPersona();
}

// -- the conversation --------------------------------------------------------------------------------------------

function bubble(role, text) {
  ui.empty.hidden = true;
  const item = el("article", "message " + role);
  item.append(el("h2", "who", role === "user" ? "You" : ui.persona.value));
  const body = el("div", "body");
  if (text) body.textContent = text;
  item.append(body);
  ui.log.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function finish(item, result, flag) {
  const meta = el("footer", "meta");
  meta.append(el("span", "solver-name", result.solver ? "answered by " + result.solver : "no solver answered"));
  if (flag) meta.append(el("span", "flag", flag));
  else if (result.finishReason === "length") meta.append(el("span", "flag", "cut short"));
  item.append(meta);
  const links = result.sources.map((s) => safeLink(s.url, s.title || s.url)).filter(Boolean);
  if (links.length) {
    const list = el("ul", "sources");
    for (const link of links) {
      const entry = el("li");
      entry.append(link);
      list.append(entry);
    }
    item.append(el("p", "sources-label", "Sources"), list);
  }
}

function busy(on) {
  ui.send.hidden = on;
  ui.stop.hidden = !on;
  if (!on) controller = null;
}

async function send(text) {
  if (controller || !text.trim()) return;
  notify("");
  const model = ui.persona.value;
  const question = { role: "user", content: text };
  const asked = bubble("user", text);
  const answer = bubble("assistant");
  answer.classList.add("streaming");
  answer.setAttribute("aria-busy", "true"); // screen readers read it once, when it is complete
  const body = answer.querySelector(".body");
  let content = "";
  let frame = 0;
  const render = () => {
    frame = 0;
    body.replaceChildren(renderMarkdown(content));
    answer.scrollIntoView({ block: "end" });
  };
  const current = conversation;
  const remember = () => {
    if (current === conversation) history.push(question, { role: "assistant", content });
  };
  controller = new AbortController();
  busy(true);
  const partial = { solver: null, sources: [], finishReason: null };
  try {
    const result = await streamChat({ model, messages: [...history, question], user: userId() }, {
      signal: controller.signal,
      onDelta: ({ content: piece, solver }) => {
        content += piece;
        partial.solver = solver;
        if (!frame) frame = requestAnimationFrame(render);
      },
    });
    render();
    finish(answer, result);
    remember();
  } catch (error) {
    if (frame) cancelAnimationFrame(frame);
    if (error.name === "AbortError") {
      render();
      finish(answer, partial, "stopped");
      if (content) remember();
    } else if (content) {
      // Failed midway (the answering solver broke off): what came stays shown, marked, and out of the history.
      render();
      finish(answer, partial, "failed");
      notify(explain(error));
    } else {
      asked.remove();
      answer.remove();
      if (!ui.log.querySelector(".message")) ui.empty.hidden = false;
      ui.input.value = text;
      if (error instanceof ApiError && error.status === 401) {
        busy(false);
        return askForKey(error, () => {
          ui.input.value = "";
          send(text);
        });
      }
      notify(explain(error));
    }
  } finally {
    answer.classList.remove("streaming");
    answer.removeAttribute("aria-busy");
    busy(false);
  }
  ui.input.focus();
}

function stop() {
  if (controller) controller.abort();
}

function newConversation() {
  stop();
  conversation += 1;
  history = [];
  ui.log.querySelectorAll(".message").forEach((m) => m.remove());
  ui.empty.hidden = false;
  notify("");
  ui.input.focus();
}

// -- wiring ----------------------------------------------------------------------------------------------------

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value;
  ui.input.value = "";
  send(text);
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && controller) {
    event.preventDefault();
    stop();
  }
});
ui.stop.addEventListener("click", stop);
ui.newChat.addEventListener("click", newConversation);
ui.persona.addEventListener("change", () => {
  localStorage.setItem(PERSONA_ITEM, ui.persona.value);
  showPersona();
});
ui.keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  setApiKey(ui.keyInput.value.trim());
  ui.keyForm.hidden = true;
  const then = retry || loadPersonas;
  retry = null;
  if (!personas.length && then !== loadPersonas) {
    await loadPersonas();
    if (!ui.keyForm.hidden) return; // refused again: the form is back
  }
  then();
});
ui.newId.addEventListener("click", () => {
  ui.userId.textContent = renewUserId();
});

ui.userId.textContent = userId();
loadPersonas();
ui.input.focus();
