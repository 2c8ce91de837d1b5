// Replicas behind a real load balancer, on loopback: Debian's nginx with the settings of
// docker/nginx.conf in front of three bin/gptd processes. 200 streams spread over all three;
// a replica killed mid-run fails only what it was serving, and new requests go to the others;
// a replica sent SIGTERM drains its streams to completion and exits 0.
// Run: node --test tests/lb/   (GPTD_BIN, NGINX_BIN override the binaries)
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const GPTD = process.env.GPTD_BIN || "bin/gptd";
const NGINX = process.env.NGINX_BIN || "/usr/sbin/nginx";
const dir = mkdtempSync(join(tmpdir(), "gptd-lb-"));
const model = join(dir, "model.safetensors");
copyFileSync("weights/shakespeare-char.safetensors", model);

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitHealthy(port) {
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) return; } catch {}
    await sleep(50);
  }
  throw new Error(`port ${port} never became healthy`);
}

function startReplica(port) {
  const p = spawn(GPTD, ["--model", model, "--port", String(port), "--threads", "1",
                         "--drain-timeout", "30"], { stdio: ["ignore", "ignore", "pipe"] });
  p.log = "";
  p.stderr.on("data", (d) => { p.log += d; });
  p.exited = new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal })));
  return p;
}

// One streaming request through nginx: resolves with {ok, id, text, finish, error}.
async function stream(port, maxTokens, seed) {
  let id = null;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/generate`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: "KING:", max_tokens: maxTokens, seed, stream: true }) });
    if (res.status !== 200) return { ok: false, error: `status ${res.status}` };
    const decoder = new TextDecoder();
    // the id (and so the replica) is known from the headers on, even if the stream is cut
    id = res.headers.get("x-request-id");
    let buf = "", text = "", finish = null, done = false;
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, cut); buf = buf.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") { done = true; continue; }
        const msg = JSON.parse(data);
        if (msg.text !== undefined) text += msg.text;
        if (msg.finish_reason) { finish = msg.finish_reason; id = msg.id; }
      }
    }
    return { ok: done && finish === "length" && text.length === maxTokens, id, text, finish };
  } catch (e) {
    return { ok: false, id, error: String(e) };
  }
}

const replicaOf = (id) => id && id.split("-")[1].slice(0, 8); // gen-<replica><counter>

const ports = [await freePort(), await freePort(), await freePort()];
const lbPort = await freePort();
const replicas = ports.map(startReplica);
await Promise.all(ports.map(waitHealthy));

// The replica id prefix of each port, asked directly.
const prefixOf = {};
for (const [i, port] of ports.entries()) {
  const r = await (await fetch(`http://127.0.0.1:${port}/generate`, { method: "POST",
    body: JSON.stringify({ prompt: "A", max_tokens: 1 }) })).json();
  prefixOf[replicaOf(r.id)] = i;
}

// nginx with docker/nginx.conf's upstream and location, pointed at the loopback replicas.
let site = readFileSync("docker/nginx.conf", "utf8")
  .replace(/server gptd(\d):8080/g, (_, n) => `server 127.0.0.1:${ports[Number(n) - 1]}`)
  .replace(/listen 8080;/, `listen 127.0.0.1:${lbPort};`);
writeFileSync(join(dir, "site.conf"), site);
writeFileSync(join(dir, "nginx.conf"), `
daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}`);
const nginx = spawn(NGINX, ["-c", join(dir, "nginx.conf"), "-p", dir], { stdio: "inherit" });
await waitHealthy(lbPort);

after(async () => {
  nginx.kill("SIGTERM");
  for (const r of replicas) if (r.exitCode === null && r.signalCode === null) r.kill("SIGTERM");
  await Promise.all(replicas.map((r) => r.exited));
});

test("200 streaming requests through nginx are spread over all three replicas", async () => {
  const results = [];
  for (let wave = 0; wave < 5; wave++)
    results.push(...await Promise.all(Array.from({ length: 40 }, (_, i) => stream(lbPort, 20, wave * 40 + i))));
  const failed = results.filter((r) => !r.ok);
  assert.equal(failed.length, 0, `failed: ${JSON.stringify(failed.slice(0, 3))}`);
  const counts = [0, 0, 0];
  for (const r of results) counts[prefixOf[replicaOf(r.id)]]++;
  console.log(`  per replica: ${counts.join(", ")}`);
  for (const c of counts) assert.ok(c > 0, `a replica got no requests: ${counts}`);
});

test("a killed replica fails only its own streams; new requests go to the others", async () => {
  const victim = 0;
  // long streams: all 30 are still running when the replica dies
  const inflight = Array.from({ length: 30 }, (_, i) => stream(lbPort, 1000, 1000 + i));
  await sleep(300);
  replicas[victim].kill("SIGKILL");
  const results = await Promise.all(inflight);
  const lost = results.filter((r) => !r.ok);
  const onVictim = results.filter((r) => prefixOf[replicaOf(r.id)] === victim);
  console.log(`  in flight: ${results.length}, on the killed replica: ${onVictim.length}, lost: ${lost.length}`);
  for (const r of results) assert.ok(r.id, `a stream without a request id: ${JSON.stringify(r)}`);
  // exactly the killed replica's streams are lost: none of the others, all of its own
  for (const r of lost) assert.equal(prefixOf[replicaOf(r.id)], victim, `lost elsewhere: ${JSON.stringify(r)}`);
  assert.ok(onVictim.length >= 1 && onVictim.length < results.length, `${onVictim.length} on the victim`);
  assert.equal(lost.length, onVictim.length);
  const after = await Promise.all(Array.from({ length: 30 }, (_, i) => stream(lbPort, 10, 2000 + i)));
  assert.equal(after.filter((r) => !r.ok).length, 0, "a request after the kill failed");
  for (const r of after) assert.notEqual(prefixOf[replicaOf(r.id)], victim);
});

test("a replica sent SIGTERM drains its streams to completion and exits 0", async () => {
  const target = 1;
  let signalledAt = 0;
  const finishedAt = [];
  // 30 streams of 400 tokens: still in flight well after the signal, so the replica is
  // draining (listening, /health 503) when it is asked
  const direct = Array.from({ length: 30 }, (_, i) =>
    stream(ports[target], 400, 3000 + i).then((r) => { finishedAt.push(Date.now()); return r; }));
  await sleep(150);
  signalledAt = Date.now();
  replicas[target].kill("SIGTERM");
  await sleep(100);
  const health = await fetch(`http://127.0.0.1:${ports[target]}/health`).then((r) => r.status, () => 0);
  const viaLb = await Promise.all(Array.from({ length: 10 }, (_, i) => stream(lbPort, 10, 4000 + i)));
  const drained = await Promise.all(direct);
  assert.equal(drained.filter((r) => !r.ok).length, 0, "a draining stream did not complete");
  // they were really in flight when the signal came, and ran to their end after it
  for (const t of finishedAt) assert.ok(t > signalledAt + 50, "a stream ended before SIGTERM");
  console.log(`  streams finished ${Math.min(...finishedAt) - signalledAt}..${Math.max(...finishedAt) - signalledAt} ms after SIGTERM`);
  assert.equal(health, 503, `health while draining: ${health}`);
  assert.equal(viaLb.filter((r) => !r.ok).length, 0, "a request through nginx failed while a replica drained");
  const { code } = await replicas[target].exited;
  assert.equal(code, 0, replicas[target].log.slice(-500));
});
