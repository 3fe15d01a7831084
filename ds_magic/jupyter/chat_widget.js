// The chat's front end (an anywidget ES module). It only draws what the kernel sends and reports
// what the user does; every request, queue and history decision is made kernel-side (ds_magic/chat.py).
//
// Safety (kernel-and-widgets.md §8): model text reaches this file only as HTML that the kernel
// rendered with raw HTML disabled and links/images neutralised (render.py), or as plain strings that
// go into textContent. Nothing here turns text into markup.

const SEND_DEBOUNCE_MS = 300;
const EDITING_KEYS = new Set(["enter", "a", "c", "v", "x", "z", "y", "arrowleft", "arrowright", "arrowup", "arrowdown", "backspace", "delete", "home", "end"]);

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Copy with the async Clipboard API where the page allows it (a secure context such as
// http://localhost), else through a hidden textarea and execCommand("copy").
async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_err) {
    // fall through to the older route
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.style.position = "fixed";
  ta.style.opacity = "0";
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (_err) {
    ok = false;
  }
  ta.remove();
  return ok;
}

function mouse(node, type) {
  node.dispatchEvent(new MouseEvent(type, { bubbles: true, cancelable: true, button: 0, view: window }));
}

function waitFor(fn, timeoutMs) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      const value = fn();
      if (value || Date.now() - t0 > timeoutMs) resolve(value || null);
      else setTimeout(tick, 50);
    };
    tick();
  });
}

// "Insert as a new cell": there is no cross-frontend API and a comm message cannot carry a
// set_next_input payload (those ride only on execute_reply). In JupyterLab and Notebook 7 the chat
// sits inside a notebook cell, so it does what a user does: select that cell, press the notebook
// toolbar's "insert a cell below" button, and type the code into the new cell's editor. Elsewhere
// (VS Code, Colab, no toolbar) the code is copied instead and the button says so.
async function insertCell(el, code) {
  const cell = el.closest(".jp-Cell");
  const panel = el.closest(".jp-NotebookPanel");
  const button = panel && panel.querySelector('.jp-Toolbar [data-command="notebook:insert-cell-below"]');
  if (!cell || !button) {
    return (await copyText(code)) ? "copied: paste it into a new cell" : "copy failed";
  }
  const before = cell.nextElementSibling;
  const prompt = cell.querySelector(".jp-InputArea-prompt") || cell;
  mouse(prompt, "mousedown");
  mouse(prompt, "mouseup");
  mouse(prompt, "click");
  // JupyterLab's toolbar buttons act on mousedown (ToolbarButtonComponent), other versions on click.
  mouse(button, "mousedown");
  const next = await waitFor(() => {
    const n = cell.nextElementSibling;
    return n && n !== before && n.classList.contains("jp-Cell") ? n : null;
  }, 1500);
  let created = next;
  if (!created) {
    mouse(button, "mouseup");
    mouse(button, "click");
    created = await waitFor(() => {
      const n = cell.nextElementSibling;
      return n && n !== before && n.classList.contains("jp-Cell") ? n : null;
    }, 2000);
  }
  const editor = created && (await waitFor(() => created.querySelector(".cm-content"), 2000));
  if (!editor) {
    return (await copyText(code)) ? "copied: paste it into a new cell" : "copy failed";
  }
  editor.focus();
  // One input event for the whole text, so CodeMirror does not auto-close brackets or re-indent.
  document.execCommand("insertText", false, code);
  created.scrollIntoView({ block: "nearest" });
  return "inserted below";
}

function flash(button, text) {
  const old = button.dataset.label || button.textContent;
  button.dataset.label = old;
  button.textContent = text;
  setTimeout(() => {
    button.textContent = old;
  }, 2500);
}

// Copy / insert buttons on every code block of a finished answer.
function decorate(body, el) {
  for (const pre of body.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code || pre.dataset.dsTools) continue;
    pre.dataset.dsTools = "1";
    const bar = h("div", "ds-chat-codebar");
    const copy = h("button", "ds-chat-copy", "Copy");
    copy.type = "button";
    copy.title = "Copy this code to the clipboard";
    copy.addEventListener("click", async () => {
      flash(copy, (await copyText(code.textContent)) ? "Copied" : "Copy failed");
    });
    const insert = h("button", "ds-chat-insert", "Insert as cell");
    insert.type = "button";
    insert.title = "Insert this code as a new cell below the chat";
    insert.addEventListener("click", async () => {
      flash(insert, await insertCell(el, code.textContent.replace(/\n$/, "")));
    });
    bar.append(copy, insert);
    pre.before(bar);
  }
}

function entryNode(entry, el) {
  const role = entry.role || "note";
  const node = h("div", `ds-chat-msg ds-chat-${role}`);
  node.dataset.id = entry.id || "";
  if (entry.status) node.dataset.status = entry.status;
  if (role === "user") node.append(h("div", "ds-chat-who", "You"));
  if (role === "assistant") node.append(h("div", "ds-chat-who", entry.model || "DeepSeek"));
  if (entry.reasoning) {
    const details = h("details", "ds-chat-reasoning");
    details.append(h("summary", "", "Thinking"));
    const inner = h("div", "ds-chat-reasoning-body");
    inner.innerHTML = entry.reasoning; // kernel-rendered, escaped (escape_pre)
    details.append(inner);
    node.append(details);
  }
  const body = h("div", "ds-chat-body");
  body.innerHTML = entry.html || ""; // kernel-rendered safe HTML (render.markdown_to_safe_html)
  node.append(body);
  if (role === "assistant") decorate(body, el);
  if (entry.note) node.append(h("div", "ds-chat-note", entry.note));
  if (entry.footer) node.append(h("div", "ds-chat-footer", entry.footer));
  return node;
}

// ---------------------------------------------------------------- saved notebooks
// A widget output names its model by id. Reopened without that model's kernel, JupyterLab shows
// "Error displaying widget: model not found" unless the notebook's metadata holds the model's state
// ("widgets" → application/vnd.jupyter.widget-state+json), which ipywidgets restores on open whether
// or not its "save widget state" setting is on (jupyterlab-manager's restoreWidgets →
// _loadFromNotebook). That setting is off by default and would save every widget, so instead the
// chat keeps only its own state there: when the document starts saving (the manager's public
// `context.saveState` signal, the one ipywidgets uses), each chat still shown in an output is
// written as a read-only copy marked _ds_saved. Chats no longer shown are dropped, other widgets'
// entries are left alone. Outside JupyterLab / Notebook 7 (no context) nothing is hooked and the
// output's text/html transcript is what a reader sees.
const WIDGET_VIEW = "application/vnd.jupyter.widget-view+json";
const WIDGET_STATE = "application/vnd.jupyter.widget-state+json";
const HOOK = Symbol.for("ds_magic.chat.saveHook");
const REF = /^IPY_MODEL_(.+)$/;

function isChatState(entry) {
  return Boolean(entry && entry.state && typeof entry.state._ds_chat_id === "string" && entry.state._ds_chat_id);
}

function refsOf(value, out) {
  if (typeof value === "string") {
    const m = REF.exec(value);
    if (m) out.add(m[1]);
  } else if (Array.isArray(value)) {
    for (const v of value) refsOf(v, out);
  } else if (value && typeof value === "object") {
    for (const v of Object.values(value)) refsOf(v, out);
  }
  return out;
}

function shownModelIds(notebook) {
  const ids = new Set();
  const json = notebook.toJSON();
  for (const cell of json.cells || []) {
    for (const output of cell.outputs || []) {
      const view = output.data && output.data[WIDGET_VIEW];
      if (view && view.model_id) ids.add(view.model_id);
    }
  }
  return ids;
}

// The model's state as ipywidgets' serialize_state writes it (no binary buffers in a chat).
function serialized(real) {
  return {
    model_name: real.get("_model_name") || real.name,
    model_module: real.get("_model_module") || real.module,
    model_module_version: real.get("_model_module_version"),
    state: real.serialize(real.get_state(true)),
  };
}

// The copy a reopened notebook restores: what was on screen, frozen. An answer still streaming
// becomes an entry that says so; queued and half-typed messages were never sent and are left out.
function frozen(entry) {
  const st = { ...entry.state };
  const live = st.live || {};
  const entries = [...(st.entries || [])];
  if (live.id) {
    entries.push({
      id: live.id,
      role: "assistant",
      model: live.model,
      html: st.live_html || "",
      reasoning: st.live_reasoning || "",
      footer: st.live_info || "",
      note: "Still streaming when the notebook was saved.",
    });
  }
  Object.assign(st, {
    entries,
    live: {},
    live_html: "",
    live_reasoning: "",
    live_info: "",
    queue: [],
    busy: false,
    draft: "",
    _ds_saved: true,
  });
  return { ...entry, state: st };
}

function keepChats(context, registry) {
  const notebook = context.model;
  const meta = (notebook.getMetadata ? notebook.getMetadata("widgets") : notebook.metadata.get("widgets")) || {};
  const previous = (meta[WIDGET_STATE] && meta[WIDGET_STATE].state) || {};
  const shown = shownModelIds(notebook);
  const state = {};
  const dropped = new Set();
  for (const [id, entry] of Object.entries(previous)) {
    if (isChatState(entry) && !shown.has(id)) dropped.add(id);
    else state[id] = entry;
  }
  for (const [id, real] of registry) {
    if (!shown.has(id)) continue;
    const entry = serialized(real);
    state[id] = frozen(entry); // a copy restored from a saved notebook freezes to itself
    // The models it refers to (its Layout) must be restorable too.
    for (const dep of refsOf(entry.state, new Set())) {
      const depModel = registry.deps.get(dep);
      if (depModel) state[dep] = serialized(depModel);
    }
  }
  // A dropped chat's Layout goes too, unless something kept still refers to it.
  const stillUsed = refsOf(state, new Set());
  for (const id of dropped) {
    for (const dep of refsOf(previous[id].state, new Set())) {
      if (!stillUsed.has(dep) && !shown.has(dep)) delete state[dep];
    }
  }
  const next = Object.keys(state).length
    ? { ...meta, [WIDGET_STATE]: { version_major: 2, version_minor: 0, state } }
    : Object.fromEntries(Object.entries(meta).filter(([k]) => k !== WIDGET_STATE));
  if (JSON.stringify(next) === JSON.stringify(meta)) return;
  const empty = Object.keys(next).length === 0;
  if (notebook.setMetadata) {
    if (empty) notebook.deleteMetadata("widgets");
    else notebook.setMetadata("widgets", next);
  } else if (empty) {
    notebook.metadata.delete("widgets");
  } else {
    notebook.metadata.set("widgets", next);
  }
}

// Register this chat's model with its document's save hook (installed once per document).
function watchSaves(manager, real) {
  const context = manager && manager.context;
  if (!context || !context.saveState || !context.model || typeof real.get_state !== "function") return;
  let registry = context[HOOK];
  if (!registry) {
    registry = new Map();
    registry.deps = new Map();
    context[HOOK] = registry;
    context.saveState.connect((_sender, phase) => {
      if (phase !== "started") return;
      try {
        keepChats(context, registry);
      } catch (err) {
        console.warn("ds_magic chat: could not keep the chat in the saved notebook", err);
      }
    });
  }
  registry.set(real.model_id, real);
  real.once("destroy", () => registry.delete(real.model_id));
  for (const value of Object.values(real.attributes || {})) {
    if (value && value.model_id && typeof value.get_state === "function") registry.deps.set(value.model_id, value);
  }
}

function render({ model, el }) {
  const root = h("div", "ds-chat");
  const head = h("div", "ds-chat-head");
  const title = h("span", "ds-chat-title");
  const select = h("select", "ds-chat-model");
  select.title = "Model for the next message";
  const newChat = h("button", "ds-chat-new", "New chat");
  newChat.type = "button";
  newChat.title = "Start a fresh thread (the old one is kept under another name)";
  head.append(title, select, newChat);

  const list = h("div", "ds-chat-list");
  const history = h("div", "ds-chat-history");
  const live = h("div", "ds-chat-live");
  const queue = h("div", "ds-chat-queue");
  const tools = h("div", "ds-chat-tools");
  list.append(history, live, tools, queue);

  const status = h("div", "ds-chat-status");
  const inputRow = h("div", "ds-chat-inputrow");
  const input = h("textarea", "ds-chat-input");
  input.rows = 3;
  input.placeholder = "Ask DeepSeek… (Enter sends, Shift+Enter for a new line)";
  const send = h("button", "ds-chat-send", "Send");
  send.type = "button";
  const cancel = h("button", "ds-chat-cancel", "Cancel");
  cancel.type = "button";
  cancel.title = "Stop this answer (and its billing)";
  inputRow.append(input, send, cancel);
  root.append(head, list, status, inputRow);
  el.append(root);

  const seen = new Set();
  let draftTimer = null;

  const nearBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const stick = (was) => {
    if (was) list.scrollTop = list.scrollHeight;
  };

  const syncDraft = () => {
    clearTimeout(draftTimer);
    draftTimer = null;
    if (model.get("draft") !== input.value) {
      model.set("draft", input.value);
      model.save_changes();
    }
  };

  const drawTitle = () => {
    title.textContent = `DeepSeek chat · ${model.get("title")}`;
  };

  const drawModels = () => {
    const current = model.get("model");
    const names = [...model.get("models")];
    if (current && !names.includes(current)) names.push(current);
    select.replaceChildren(...names.map((n) => Object.assign(h("option", "", n), { value: n })));
    select.value = current;
  };

  const drawEntries = (restore) => {
    const was = nearBottom();
    const entries = model.get("entries");
    history.replaceChildren(...entries.map((e) => entryNode(e, el)));
    for (const e of entries) {
      // An answer that failed gives its prompt back to the input, unless something new is typed there.
      if (restore && e.restore && !seen.has(e.id) && !input.value.trim()) {
        input.value = e.restore;
        syncDraft();
      }
      seen.add(e.id);
    }
    stick(was);
  };

  const drawLive = () => {
    const was = nearBottom();
    const entry = model.get("live");
    if (!entry || !entry.id) {
      live.replaceChildren();
      return;
    }
    let node = live.firstElementChild;
    if (!node || node.dataset.id !== entry.id) {
      node = h("div", "ds-chat-msg ds-chat-assistant ds-chat-streaming");
      node.dataset.id = entry.id;
      const details = h("details", "ds-chat-reasoning");
      details.append(h("summary", "", "Thinking"), h("div", "ds-chat-reasoning-body"));
      node.append(h("div", "ds-chat-who", entry.model || "DeepSeek"), details);
      node.append(h("div", "ds-chat-body"), h("div", "ds-chat-footer"));
      live.replaceChildren(node);
    }
    const reasoning = model.get("live_reasoning");
    const details = node.querySelector(".ds-chat-reasoning");
    details.style.display = reasoning ? "" : "none";
    details.querySelector(".ds-chat-reasoning-body").innerHTML = reasoning; // escaped kernel-side
    node.querySelector(".ds-chat-body").innerHTML = model.get("live_html"); // safe HTML, kernel-side
    node.querySelector(".ds-chat-footer").textContent = model.get("live_info");
    stick(was);
  };

  const drawQueue = () => {
    const was = nearBottom();
    queue.replaceChildren(
      ...model.get("queue").map((text) => {
        const node = h("div", "ds-chat-msg ds-chat-user ds-chat-queued");
        node.append(h("div", "ds-chat-who", "You · queued"), h("div", "ds-chat-body ds-chat-plain", text));
        return node;
      }),
    );
    stick(was);
  };

  const drawBusy = () => {
    const busy = model.get("busy");
    cancel.style.display = busy && !readOnly ? "" : "none";
    root.classList.toggle("ds-chat-busy", busy);
  };

  // Read-only: a copy restored from a saved notebook, or a chat whose kernel has gone (restart,
  // shutdown). Copy and Insert still work; sending would go nowhere, so the input is hidden.
  let readOnly = "";
  const drawStatus = () => {
    status.textContent = readOnly || model.get("status");
  };
  const drawReadOnly = (note) => {
    readOnly = note;
    root.classList.toggle("ds-chat-static", Boolean(note));
    inputRow.style.display = note ? "none" : "";
    newChat.style.display = note ? "none" : "";
    select.disabled = Boolean(note);
    drawBusy();
    drawStatus();
  };

  const doSend = () => {
    const text = input.value;
    if (!text.trim()) return;
    model.send({ event: "send", text });
    input.value = "";
    syncDraft();
    input.focus();
  };

  input.value = model.get("draft") || "";
  input.addEventListener("keydown", (event) => {
    // Keys typed here are the chat's, not the notebook's shortcuts (Shift+Enter would run the cell),
    // except application shortcuts such as Ctrl+S (save) or Ctrl+Shift+C (command palette); the
    // text-editing ones (select all, copy, paste, cut, undo, redo) stay with the input.
    const mod = event.ctrlKey || event.metaKey;
    if (!mod || EDITING_KEYS.has(event.key.toLowerCase())) event.stopPropagation();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      doSend();
    }
  });
  input.addEventListener("input", () => {
    clearTimeout(draftTimer);
    draftTimer = setTimeout(syncDraft, SEND_DEBOUNCE_MS);
  });
  send.addEventListener("click", doSend);
  cancel.addEventListener("click", () => model.send({ event: "cancel" }));
  newChat.addEventListener("click", () => model.send({ event: "new_chat" }));
  select.addEventListener("change", () => {
    model.set("model", select.value);
    model.save_changes();
  });

  // Chat(tools=...): the calls of the answer in progress, as text; buttons under the one that asks.
  const drawTools = () => {
    const was = nearBottom();
    const asking = model.get("tool_asking") || "";
    tools.replaceChildren(
      ...(model.get("tool_calls") || []).map((c) => {
        const node = h("div", "ds-chat-msg ds-chat-tool");
        const state = [c.status, c.note].filter(Boolean).join(" · ");
        node.append(h("div", "ds-chat-tool-head", `${c.name}(${c.args}) ${state ? "— " + state : ""}`));
        if (c.result) node.append(h("div", "ds-chat-plain ds-chat-tool-result", String(c.result)));
        if (asking && asking === c.id) {
          const bar = h("div", "ds-chat-tool-buttons");
          for (const [label, decision] of [["Run", "run"], ["Deny", "deny"], [`Always allow ${c.name}`, "always"]]) {
            const b = h("button", `ds-chat-tool-${decision}`, label);
            b.type = "button";
            b.addEventListener("click", () => {
              for (const x of bar.querySelectorAll("button")) x.disabled = true;
              model.send({ event: "decide", id: c.id, decision });
            });
            bar.append(b);
          }
          node.append(bar);
        }
        return node;
      }),
    );
    stick(was);
  };

  const onEntries = () => drawEntries(true);
  const handlers = [
    ["change:title", drawTitle],
    ["change:models", drawModels],
    ["change:model", drawModels],
    ["change:entries", onEntries],
    ["change:live", drawLive],
    ["change:live_html", drawLive],
    ["change:live_reasoning", drawLive],
    ["change:live_info", drawLive],
    ["change:queue", drawQueue],
    ["change:busy", drawBusy],
    ["change:status", drawStatus],
    ["change:tool_calls", drawTools],
    ["change:tool_asking", drawTools],
  ];
  for (const [name, fn] of handlers) model.on(name, fn);

  drawTitle();
  drawModels();
  drawEntries(false);
  drawLive();
  drawQueue();
  drawBusy();
  drawStatus();
  drawTools();
  if (model.get("_ds_saved")) drawReadOnly("Saved transcript, read-only. Run this cell to chat again.");
  list.scrollTop = list.scrollHeight;

  // The model behind the proxy: its comm tells a live chat from a dead one, and the save hook
  // needs its full state.
  let real = null;
  const onLiveness = () => {
    if (!real || model.get("_ds_saved")) return;
    drawReadOnly(real.comm_live ? "" : "Not connected to a kernel, read-only. Run this cell to chat again.");
  };
  const manager = model.widget_manager;
  const id = model.get("_ds_chat_id");
  if (id && manager && typeof manager.get_model === "function") {
    manager
      .get_model(id)
      .then((found) => {
        real = found;
        if (!real) return;
        watchSaves(manager, real);
        real.on("comm_live_update", onLiveness);
        onLiveness();
      })
      .catch((err) => console.warn("ds_magic chat: model lookup failed", err));
  }

  return () => {
    clearTimeout(draftTimer);
    for (const [name, fn] of handlers) model.off(name, fn);
    if (real) real.off("comm_live_update", onLiveness);
  };
}

export default { render };
