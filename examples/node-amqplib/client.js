#!/usr/bin/env node
// A rabbit-chaos client in Node.js with amqplib: one process is a publisher or a consumer,
// as its config says, and writes the history events of docs/client-protocol.md.
//
//   rabbit-chaos check-client --client-cmd "node examples/node-amqplib/client.js"
//   rabbit-chaos run --client-cmd "node examples/node-amqplib/client.js" --client node-amqplib --fault broker-restart
//
// Recovery policy (the thing a chaos run judges): a reconnect loop with exponential backoff;
// publisher confirms (ConfirmChannel) and persistent messages, so publish.ok means the broker took
// responsibility; a message whose confirm never came (connection lost) is recorded as unknown
// (publish.info) and re-published after the reconnect: at-least-once, duplicates over loss.
// The consumer acks manually after work_s and re-consumes after every reconnect.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const amqp = require('amqplib');

// ---- config: --config PATH (appended by the harness) or $RABBIT_CHAOS_CONFIG ------------------
function configPath() {
  const i = process.argv.indexOf('--config');
  const file = i >= 0 ? process.argv[i + 1] : process.env.RABBIT_CHAOS_CONFIG;
  if (!file) {
    console.error('no client config: pass --config PATH or set RABBIT_CHAOS_CONFIG');
    process.exit(2);
  }
  return file;
}

// amqplib's package.json is not in its "exports": read it from beside its entry point.
function libraryVersion() {
  const pkg = path.join(path.dirname(require.resolve('amqplib')), 'package.json');
  return JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
}

const cfg = JSON.parse(fs.readFileSync(configPath(), 'utf8'));
const params = cfg.params || {};
const RETRY_DELAY_S = Number(params.retry_delay_s ?? 0.5);
const MAX_DELAY_S = Number(params.max_delay_s ?? 5);
const MAX_IN_FLIGHT = Number(params.max_in_flight ?? 500);
const CONFIRM_WAIT_S = Number(params.confirm_wait_s ?? 1);
const PREFETCH = Number(params.prefetch ?? 100);
const HEARTBEAT = Number(params.heartbeat ?? 60);

// ---- history: one JSON object per line, written synchronously (a kill leaves whole lines) ----
const historyFd = fs.openSync(cfg.history, 'a');

// t must be CLOCK_MONOTONIC seconds, the clock the harness and the other clients use:
// process.hrtime is CLOCK_MONOTONIC on Linux (libuv uv_hrtime).
const monotonic = () => Number(process.hrtime.bigint()) / 1e9;

function event(kind, fields = {}) {
  const ev = {t: monotonic(), wall: Date.now() / 1000, pid: process.pid, proc: cfg.proc, role: cfg.role, kind,
    ...fields};
  fs.writeSync(historyFd, JSON.stringify(ev) + '\n');
}

const describe = (err) => (err ? `${err.name || 'Error'}: ${err.message || String(err)}` : 'connection closed');

// ---- stop and wake-ups: SIGTERM sets `stopping`; every wait ends early on any wake() ----------
let stopping = false;
let waiters = [];

function wake() {
  const w = waiters;
  waiters = [];
  for (const resolve of w) resolve();
}

function wait(seconds) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, seconds) * 1000);
    waiters.push(() => { clearTimeout(timer); resolve(); });
  });
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { stopping = true; wake(); });
}

// ---- connections: named "<run_id>/<proc>", reconnect with exponential backoff ----------------
function connectionUrl() {
  const url = new URL(cfg.amqp_url);
  url.searchParams.set('heartbeat', String(HEARTBEAT));
  return url.toString();
}

// Open a connection, retrying with backoff until it works or SIGTERM (returns null).
// A refused attempt (broker down) loses nothing, so it is not recorded; conn.lost is written
// once when an open connection closes without our asking.
async function open() {
  let delay = RETRY_DELAY_S;
  while (!stopping) {
    try {
      const conn = await amqp.connect(connectionUrl(), {
        clientProperties: {connection_name: `${cfg.run_id}/${cfg.proc}`}, timeout: 10000});
      const session = {conn, closed: false, ours: false};
      conn.on('error', () => {}); // 'close' follows with the same error
      conn.on('close', (err) => {
        session.closed = true;
        if (!session.ours) event('conn.lost', {error: describe(err)});
        wake();
      });
      conn.on('blocked', (reason) => event('conn.blocked', {reason: String(reason)}));
      conn.on('unblocked', () => event('conn.unblocked'));
      event('conn.open');
      return session;
    } catch (err) {
      await wait(delay);
      delay = Math.min(delay * 2, MAX_DELAY_S);
    }
  }
  return null;
}

async function closeQuietly(session) {
  if (!session || session.closed) return;
  session.ours = true;
  await Promise.race([session.conn.close().catch(() => {}), wait(2)]);
}

// The queue exactly as the harness declares it (durable, no arguments: anything else is refused).
const declare = (ch) => ch.assertQueue(cfg.queue, {durable: true});

// ---- publisher ------------------------------------------------------------------------------
// Pacing as the protocol asks: `rate` msg/s on an absolute schedule; after falling behind by more
// than one interval (an outage), restart from now instead of bursting. Re-sends are not paced.
class Schedule {
  constructor(rate) { this.interval = rate > 0 ? 1 / rate : 0; this.next = monotonic(); }
  delay() {
    if (this.interval === 0) return 0;
    const now = monotonic();
    if (this.next > now) return this.next - now;
    if (now - this.next > this.interval) this.next = now;
    return 0;
  }
  advance() { this.next += this.interval; }
}

async function publisher() {
  const ids = Array.from({length: cfg.count}, (_, seq) => `${cfg.id_prefix}${seq}`);
  const owed = []; // ids to re-send (no accepted outcome yet), ahead of fresh ones
  let next = 0;
  const schedule = new Schedule(cfg.rate);
  const finished = () => next >= ids.length && owed.length === 0;

  while (!stopping && !finished()) {
    const session = await open();
    if (!session) return;
    let ch;
    try {
      ch = await session.conn.createConfirmChannel();
      await declare(ch);
    } catch (err) {
      await closeQuietly(session);
      await wait(RETRY_DELAY_S);
      continue;
    }
    let chClosed = false;
    ch.on('error', () => {});
    ch.on('close', () => { chClosed = true; wake(); });
    const inFlight = new Set(); // attempts awaiting their confirm, in publish order

    const settle = (attempt, err) => {
      if (!inFlight.delete(attempt)) return; // already given an outcome
      if (!err) {
        event('publish.ok', {id: attempt.id, confirmed: true});
      } else if (err.message === 'message nacked') {
        event('publish.fail', {id: attempt.id, error: 'nacked by the broker'});
        owed.push(attempt.id);
      } else { // 'channel closed': the confirm was lost with the channel, outcome unknown
        event('publish.info', {id: attempt.id, error: describe(err)});
        owed.push(attempt.id);
      }
      wake();
    };

    while (!stopping && !chClosed && !session.closed) {
      if (inFlight.size >= MAX_IN_FLIGHT) { await wait(1); continue; }
      let id = owed.shift();
      if (id === undefined) {
        if (next >= ids.length) {
          if (inFlight.size === 0) break; // every id has an accepted outcome
          await wait(1);
          continue;
        }
        const d = schedule.delay();
        if (d > 0) { await wait(d); continue; }
        schedule.advance();
        id = ids[next++];
      }
      const attempt = {id};
      event('publish.invoke', {id});
      inFlight.add(attempt);
      let room = true;
      try {
        room = ch.publish('', cfg.queue, Buffer.from(id, 'utf8'), {persistent: true}, (err) => settle(attempt, err));
      } catch (err) { // the channel closed between the check and the call
        settle(attempt, err);
        break;
      }
      if (!room) await Promise.race([new Promise((r) => ch.once('drain', r)), wait(5)]);
    }

    if (stopping && inFlight.size) { // give the outstanding confirms a moment to arrive
      const deadline = monotonic() + CONFIRM_WAIT_S;
      while (inFlight.size && !chClosed && monotonic() < deadline) await wait(deadline - monotonic());
    }
    for (const attempt of [...inFlight]) settle(attempt, new Error(stopping ? 'stopped before the confirm' : 'no confirm'));
    await closeQuietly(session);
    if (!stopping && !finished()) await wait(RETRY_DELAY_S);
  }
}

// ---- consumer -------------------------------------------------------------------------------
async function consumer() {
  while (!stopping) {
    const session = await open();
    if (!session) return;
    let chOpen = false;
    try {
      const ch = await session.conn.createChannel();
      chOpen = true;
      // the broker closed the channel under us (e.g. 404 after a queue delete): 'error' carries why
      ch.on('error', (err) => event('channel.closed', {reason: describe(err),
        ...(Number.isInteger(err && err.code) ? {code: err.code} : {})}));
      ch.on('close', () => { chOpen = false; wake(); });
      await declare(ch);
      await ch.prefetch(PREFETCH);
      await ch.consume(cfg.queue, (msg) => {
        if (msg === null) { // basic.cancel from the broker (queue deleted): start over
          event('consume.cancelled', {reason: 'basic.cancel from the broker'});
          closeQuietly(session);
          return;
        }
        const id = msg.content.toString('utf8');
        event('deliver', {id, redelivered: msg.fields.redelivered});
        const ack = () => {
          if (!chOpen) return; // died with its channel: the broker redelivers it
          try { ch.ack(msg); event('ack', {id}); } catch { /* channel closing */ }
        };
        if (cfg.work_s > 0) setTimeout(ack, cfg.work_s * 1000); else ack();
      }, {noAck: false});
    } catch (err) {
      // setup failed (channel error or connection lost mid-setup): reconnect below
    }
    while (!stopping && chOpen && !session.closed) await wait(1);
    await closeQuietly(session);
    if (!stopping) await wait(RETRY_DELAY_S);
  }
}

// ---- the protocol's bookends ----------------------------------------------------------------
async function main() {
  // heartbeat_s: the checker holds silent faults past this client's detection window (no model
  // for amqplib, so it assumes two missed heartbeats) and says "not exercised" when one is shorter
  event('client.start', {library: 'amqplib', version: libraryVersion(),
    language: `node ${process.version}`, heartbeat_s: HEARTBEAT});
  try {
    await (cfg.role === 'publisher' ? publisher() : consumer());
  } catch (err) {
    event('client.exit', {reason: describe(err), ok: false, error: describe(err)});
    console.error(err);
    return 1;
  }
  event('client.exit', {reason: stopping ? 'sigterm' : 'done', ok: true});
  return 0;
}

main().then((code) => {
  fs.closeSync(historyFd);
  process.exit(code); // amqplib's sockets and timers would otherwise keep the process alive
});
