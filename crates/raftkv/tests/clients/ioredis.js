// ioredis against running raftkv nodes: the commands applications and
// ioredis itself send (its ready check reads INFO's `loading`), and a
// pipeline of 100 commands.
//
// With --cluster, ioredis's Cluster client against a sharded deployment:
// keys over many slots, then SCAN and DBSIZE on every master (each answers
// for the slots it is master of) must find every key exactly once.
//
// Usage: node ioredis.js HOST:PORT [HOST:PORT ...]   (ioredis on NODE_PATH)
//        node ioredis.js --cluster HOST:PORT
// Run by crates/raftkv/tests/clients.rs; exit status 0 when every check passes.
"use strict";
const assert = require("assert");
const Redis = require("ioredis");

async function check(endpoint) {
  const [host, port] = [endpoint.slice(0, endpoint.lastIndexOf(":")), Number(endpoint.slice(endpoint.lastIndexOf(":") + 1))];
  const r = new Redis({ host, port, connectionName: "ioredis-app", commandTimeout: 20000, maxRetriesPerRequest: 0 });
  const key = `js:${port}`;
  assert.strictEqual(await r.ping(), "PONG");
  assert.strictEqual(await r.set(key, "v1"), "OK");
  assert.strictEqual(await r.get(key), "v1");
  assert.strictEqual(await r.append(key, "23"), 4);
  assert.strictEqual(await r.exists(key, "js:missing"), 1);
  assert.strictEqual(await r.del(key, "js:missing"), 1);
  assert.strictEqual(await r.get(key), null);

  const info = await r.info();
  assert.match(info, /\r\nredis_version:7\./);
  assert.match(info, /\r\nconnected_clients:\d+\r\n/);
  assert.strictEqual(await r.client("GETNAME"), "ioredis-app");
  const id = await r.client("ID");
  const list = await r.client("LIST");
  assert.ok(list.split("\n").some((l) => l.startsWith(`id=${id} `) && l.includes(" name=ioredis-app ")), list);
  assert.deepStrictEqual(await r.config("GET", "databases"), ["databases", "1"]);
  assert.ok((await r.command("COUNT")) > 10);
  assert.strictEqual(await r.echo("hello"), "hello");

  const p = r.pipeline();
  for (let i = 0; i < 50; i++) p.set(`js:pipe:${i}`, String(i));
  for (let i = 0; i < 50; i++) p.get(`js:pipe:${i}`);
  const replies = await p.exec();
  replies.forEach(([err]) => assert.ifError(err));
  assert.deepStrictEqual(replies.slice(50).map(([, v]) => v), [...Array(50).keys()].map(String));
  await r.quit();
}

async function checkCluster(endpoint) {
  const [host, port] = [endpoint.slice(0, endpoint.lastIndexOf(":")), Number(endpoint.slice(endpoint.lastIndexOf(":") + 1))];
  const c = new Redis.Cluster([{ host, port }], { redisOptions: { commandTimeout: 20000 } });
  const keys = [...Array(100).keys()].map((i) => `jsc:${i}`);
  for (const k of keys) assert.strictEqual(await c.set(k, k), "OK");
  assert.strictEqual(await c.del(keys[0]), 1);
  const masters = c.nodes("master");
  assert.ok(masters.length >= 2, `masters: ${masters.length}`);
  const found = [];
  let size = 0;
  for (const node of masters) {
    size += await node.dbsize();
    for await (const page of node.scanStream({ match: "jsc:*", count: 7 })) found.push(...page);
  }
  const want = keys.slice(1).sort();
  assert.deepStrictEqual([...new Set(found)].sort(), want, "every key scanned, on exactly one master");
  assert.strictEqual(new Set(found).size, found.length, "no key scanned twice");
  assert.strictEqual(size, want.length, "DBSIZE over the masters");
  await c.quit();
}

(async () => {
  const args = process.argv.slice(2);
  if (args[0] === "--cluster") await checkCluster(args[1]);
  else for (const endpoint of args) await check(endpoint);
  console.log(`ioredis ${require("ioredis/package.json").version}: all checks passed`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
