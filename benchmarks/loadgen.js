// A DeepSeek-shaped SSE load generator for benchmarks/scale.py (issue 17). Not a test server: it
// checks nothing, so it costs little per event and is not the bottleneck (scale.py measures its
// ceiling with a trivial reader first).
//
//   node benchmarks/loadgen.js PORT
//
// POST /chat/completions: the last message's content says what to send, e.g.
// "tokens=100 tps=50 ttft=0.3" (tps=0: as fast as the socket takes it; stamp=1: each token is the
// time it was written). One event per token, in the
// wire format of deepseek-api.md §2 (usage on the finish chunk, then [DONE]). One timer drives every
// paced stream: each tick writes the tokens that are due, so 2,500 streams cost one timer, not 2,500.
"use strict";
const http = require("http");

const port = parseInt(process.argv[2] || "0", 10);
const TICK_MS = 5;
const paced = new Set();

function chunk(id, delta, finish, usage) {
  const obj = {
    id, object: "chat.completion.chunk", created: 1700000000, model: "deepseek-chat",
    system_fingerprint: "fp_bench",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  };
  if (usage) obj.usage = usage;
  return "data: " + JSON.stringify(obj) + "\n\n";
}

function tokenEvent(s, i) {
  // The fixed prefix is made once per stream; only the token changes. With stamp=1 the token is
  // the time it is written ("t" + Unix ms), so a client can measure each event's delay.
  return s.pre + (s.stamp ? "t" + (performance.timeOrigin + performance.now()).toFixed(2) : "w" + i) + " " + s.post;
}

function finish(s) {
  const usage = {
    prompt_tokens: 10, completion_tokens: s.tokens, total_tokens: 10 + s.tokens,
    prompt_cache_hit_tokens: 0, prompt_cache_miss_tokens: 10,
  };
  s.res.end(chunk(s.id, { content: "" }, "stop", usage) + "data: [DONE]\n\n");
}

function unpaced(s) {
  // As fast as the socket takes it: 64 events per write, waiting for 'drain' when it is full.
  while (s.sent < s.tokens) {
    let out = "";
    const end = Math.min(s.tokens, s.sent + 64);
    for (; s.sent < end; s.sent++) out += tokenEvent(s, s.sent);
    if (!s.res.write(out)) { s.res.once("drain", () => unpaced(s)); return; }
  }
  finish(s);
}

setInterval(() => {
  const now = Date.now();
  for (const s of paced) {
    if (now < s.start) continue;
    const due = Math.min(s.tokens, Math.floor(((now - s.start) / 1000) * s.tps) + 1);
    if (due > s.sent) {
      let out = "";
      for (; s.sent < due; s.sent++) out += tokenEvent(s, s.sent);
      s.res.write(out);
    }
    if (s.sent >= s.tokens) { paced.delete(s); finish(s); }
  }
}, TICK_MS);

let nextId = 0;
const server = http.createServer((req, res) => {
  if (req.method === "GET") { // /models: for a client that asks which dialect this is
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"object":"list","data":[{"id":"deepseek-chat","object":"model","owned_by":"deepseek"}]}');
    return;
  }
  const parts = [];
  req.on("data", (d) => parts.push(d));
  req.on("end", () => {
    let prompt = "";
    try {
      const body = JSON.parse(Buffer.concat(parts).toString());
      prompt = String(body.messages[body.messages.length - 1].content);
    } catch (e) { /* the defaults */ }
    const opt = { tokens: 100, tps: 50, ttft: 0, stamp: 0 };
    for (const m of prompt.matchAll(/(tokens|tps|ttft|stamp)=([0-9.]+)/g)) opt[m[1]] = parseFloat(m[2]);
    const id = "bench-" + (nextId++);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    const full = chunk(id, { content: "@@" }, null);
    const at = full.indexOf("@@");
    const s = {
      res, id, tokens: opt.tokens, tps: opt.tps, sent: 0, stamp: opt.stamp > 0,
      start: Date.now() + opt.ttft * 1000, pre: full.slice(0, at), post: full.slice(at + 2),
    };
    res.write(chunk(id, { role: "assistant", content: "" }, null));
    res.on("close", () => paced.delete(s));
    if (opt.tps > 0) paced.add(s);
    else setTimeout(() => unpaced(s), opt.ttft * 1000);
  });
});
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.maxHeadersCount = 0;
server.listen(port, "127.0.0.1", 4096, () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
