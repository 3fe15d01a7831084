// The chat's front end (an anywidget ES module). It only draws what the kernel sends and reports
// what the user does; every request, queue and history decision is made kernel-side (ds_magic/chat.py).
//
// Safety (kernel-and-widgets.md §8): model text reaches this file only as HTML that the kernel
// rendered with raw HTML disabled and links/images neutralised (render.py), or as plain strings that
// go into textContent. Nothing here turns text into markup.

const SEND_DEBOUNCE_MS = 300;

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
  list.append(history, live, queue);

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
    cancel.style.display = busy ? "" : "none";
    root.classList.toggle("ds-chat-busy", busy);
  };

  const drawStatus = () => {
    status.textContent = model.get("status");
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
    // Keys typed here are the chat's, not the notebook's shortcuts (Shift+Enter would run the cell).
    event.stopPropagation();
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
  ];
  for (const [name, fn] of handlers) model.on(name, fn);

  drawTitle();
  drawModels();
  drawEntries(false);
  drawLive();
  drawQueue();
  drawBusy();
  drawStatus();
  list.scrollTop = list.scrollHeight;

  return () => {
    clearTimeout(draftTimer);
    for (const [name, fn] of handlers) model.off(name, fn);
  };
}

export default { render };
