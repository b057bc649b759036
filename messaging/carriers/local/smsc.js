// The local store-and-forward SMSC on node-smpp: make run's SMPP carrier, the benchmarks' and the tests' SMSC.
//
//   node smsc.js [--port 2775] [--system-id local] [--password localpw] [--receipt-delay-ms 0]
//                [--undeliverable-suffix 999] [--silent-suffix 222] [--receipt-window 1000]
//                [--log FILE] [--stats-port PORT]
//
// Port 0 picks a free port. Once listening it prints `stats STATS_PORT` (with --stats-port) and then
// `ready PORT` on stdout. SIGTERM or SIGINT: the log is flushed, the process exits 0.
//
// - bind_transmitter/_receiver/_transceiver with another system_id or password: ESME_RBINDFAIL, and the link is
//   closed. A submit_sm before a bind (or on a receiver bind): ESME_RINVBNDSTS.
// - Every submit_sm is answered at once with a message id unique to this run (a restarted SMSC never hands out an
//   old one), except a destination ending in --silent-suffix: never answered (what is in flight at a crash).
// - With registered_delivery (1: always, 2: on failure), a delivery receipt is queued for the bind's system_id:
//   stat:DELIVRD (message_state 2), or stat:UNDELIV (5) for a destination ending in --undeliverable-suffix, in
//   the text form and the TLVs receipted_message_id and message_state, --receipt-delay-ms after the submit.
// - Store and forward: a queued receipt goes out over any receiver or transceiver session of its system_id
//   (at most --receipt-window unanswered per session) and leaves the queue ONLY when its deliver_sm_resp comes
//   back with status 0. What a session had in flight when it went away (unbind, reset, a kill -9 of the ESME)
//   goes back to the queue and is sent again on the next bind: no receipt is lost. A deliver_sm_resp of
//   ESME_RX_T_APPN, ESME_RTHROTTLED or ESME_RMSGQFUL sends it again a second later; any other error drops it.
// - --log FILE: one JSON line per submit_sm (message_id, source, destination, data_coding, short_message in
//   hex, esm_class, seq, registered_delivery; message_id empty for a silent one), written in batches (never a
//   write per PDU).
// - --stats-port: loopback HTTP, GET /stats -> JSON counts: submit_sm (PDUs), submit_sm_parts (of those, parts
//   of a concatenated message: UDH or sar_ TLVs), receipts_queued, receipts_sent (re-sends too),
//   receipts_acked, receipts_pending (queued or unanswered), receipts_dropped, binds, bind_refused,
//   deliver_sm_resp, sessions (bound now).
//
// Fast: the answers to what one read brought are written together (the socket is corked until the next tick),
// and short_message is kept as the raw bytes (node-smpp's text decoding per PDU is skipped).
'use strict';

const fs = require('fs');
const http = require('http');
const smpp = require('./node_modules/smpp');

const RETRY_STATUSES = new Set([smpp.ESME_RX_T_APPN, smpp.ESME_RTHROTTLED, smpp.ESME_RMSGQFUL]);
const RETRY_AFTER_MS = 1000;
const LOG_FLUSH_MS = 50;
const LOG_FLUSH_BYTES = 256 * 1024;
const UDHI = 0x40;
const STATE_DELIVERED = 2;
const STATE_UNDELIVERABLE = 5;

function options(argv) {
  const given = {port: '2775', 'system-id': 'local', password: 'localpw', 'receipt-delay-ms': '0',
    'undeliverable-suffix': '', 'silent-suffix': '', 'receipt-window': '1000', log: '', 'stats-port': ''};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in given) || argv[i + 1] === undefined) {
      process.stderr.write(`smsc.js: unknown option or missing value: ${argv[i]}\n`);
      process.exit(2);
    }
    given[name] = argv[i + 1];
  }
  return {
    port: Number(given.port), systemId: given['system-id'], password: given.password,
    receiptDelayMs: Number(given['receipt-delay-ms']), undeliverable: given['undeliverable-suffix'],
    silent: given['silent-suffix'], receiptWindow: Math.max(1, Number(given['receipt-window'])),
    log: given.log, statsPort: given['stats-port'] === '' ? null : Number(given['stats-port']),
  };
}

const config = options(process.argv.slice(2));
const stats = {submit_sm: 0, submit_sm_parts: 0, receipts_queued: 0, receipts_sent: 0, receipts_acked: 0,
  receipts_pending: 0, receipts_dropped: 0, binds: 0, bind_refused: 0, deliver_sm_resp: 0, sessions: 0};

// submit_sm's short_message stays the raw bytes: logged as hex, and no text decoding per PDU.
const shortMessage = smpp.commands.submit_sm.params.short_message;
shortMessage.filter = {encode: shortMessage.filter.encode, decode: (value) => value};

// --- message ids and receipt texts ---------------------------------------------------------------------------

const idPrefix = Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36).padStart(2, '0');
let idCounter = 0;

function messageId() {
  idCounter += 1;
  return idPrefix + idCounter.toString(36).padStart(5, '0');
}

let stampSecond = 0;
let stampText = '';

function stamp() {
  const second = Math.floor(Date.now() / 1000);
  if (second !== stampSecond) {
    const iso = new Date(second * 1000).toISOString();  // YYMMDDhhmm in UTC
    stampSecond = second;
    stampText = iso.slice(2, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16);
  }
  return stampText;
}

function textStart(pdu) {
  let raw = Buffer.isBuffer(pdu.short_message) ? pdu.short_message : Buffer.alloc(0);
  if ((pdu.esm_class & UDHI) && raw.length) raw = raw.subarray(raw[0] + 1);
  const text = (pdu.data_coding & 0x0F) === 8 ? Buffer.from(raw.subarray(0, 40)).swap16().toString('utf16le')
    : raw.subarray(0, 20).toString('latin1');
  return text.slice(0, 20).replace(/[^\x20-\x7E]/g, '?');
}

function isPart(pdu) {
  const raw = pdu.short_message;
  if ((pdu.esm_class & UDHI) && Buffer.isBuffer(raw) && raw.length > 2) {
    for (let at = 1; at + 1 < raw[0] + 1; at += 2 + raw[at + 1]) {
      if (raw[at] === 0x00 || raw[at] === 0x08) return true;  // concatenation IE, 8- or 16-bit reference
    }
  }
  return pdu.sar_msg_ref_num !== undefined;
}

function receiptFor(pdu, id, submitted) {
  const failed = config.undeliverable !== '' && String(pdu.destination_addr).endsWith(config.undeliverable);
  const asked = pdu.registered_delivery & 0x03;
  if (asked !== 1 && !(asked === 2 && failed)) return null;
  const stat = failed ? 'UNDELIV' : 'DELIVRD';
  const text = `id:${id} sub:001 dlvrd:${failed ? '000' : '001'} submit date:${submitted} done date:${stamp()} ` +
    `stat:${stat} err:${failed ? '001' : '000'} text:${textStart(pdu)}`;
  return {
    source_addr_ton: pdu.dest_addr_ton, source_addr_npi: pdu.dest_addr_npi, source_addr: pdu.destination_addr,
    dest_addr_ton: pdu.source_addr_ton, dest_addr_npi: pdu.source_addr_npi, destination_addr: pdu.source_addr,
    esm_class: 0x04, data_coding: 0, short_message: Buffer.from(text, 'latin1'),
    receipted_message_id: id, message_state: failed ? STATE_UNDELIVERABLE : STATE_DELIVERED,
  };
}

// --- the log ---------------------------------------------------------------------------------------------------

const logFd = config.log ? fs.openSync(config.log, 'a') : null;
let logLines = [];
let logBytes = 0;
let logTimer = null;

function logSubmit(pdu, id) {
  if (logFd === null) return;
  const line = JSON.stringify({message_id: id, source: pdu.source_addr, destination: pdu.destination_addr,
    data_coding: pdu.data_coding, short_message: Buffer.isBuffer(pdu.short_message) ? pdu.short_message.toString('hex') : '',
    esm_class: pdu.esm_class, registered_delivery: pdu.registered_delivery, seq: pdu.sequence_number}) + '\n';
  logLines.push(line);
  logBytes += line.length;
  if (logBytes >= LOG_FLUSH_BYTES) logFlush();
  else if (logTimer === null) logTimer = setTimeout(logFlush, LOG_FLUSH_MS);
}

function logFlush() {
  if (logTimer !== null) clearTimeout(logTimer);
  logTimer = null;
  if (logFd === null || !logLines.length) return;
  fs.writeSync(logFd, logLines.join(''));  // one write per batch of lines
  logLines = [];
  logBytes = 0;
}

// --- receipts: a queue per system_id, removed only when answered ----------------------------------------------

class ReceiptQueue {
  constructor() {
    this.ready = [];       // receipts to send, oldest first (from readyHead)
    this.readyHead = 0;
    this.delayed = [];     // [dueAt, receipt], in due order (one delay for all)
    this.delayedHead = 0;
    this.timer = null;
    this.receivers = [];   // bound receiver and transceiver sessions
    this.turn = 0;
  }

  add(receipt) {
    stats.receipts_queued += 1;
    stats.receipts_pending += 1;
    if (config.receiptDelayMs > 0) {
      this.delayed.push([Date.now() + config.receiptDelayMs, receipt]);
      if (this.timer === null) this.timer = setTimeout(() => this.due(), config.receiptDelayMs);
    } else {
      this.ready.push(receipt);
      schedulePump(this);
    }
  }

  again(receipt) {
    this.ready.push(receipt);
    schedulePump(this);
  }

  due() {
    this.timer = null;
    const now = Date.now();
    while (this.delayedHead < this.delayed.length && this.delayed[this.delayedHead][0] <= now) {
      this.ready.push(this.delayed[this.delayedHead][1]);
      this.delayedHead += 1;
    }
    compact(this, 'delayed', 'delayedHead');
    if (this.delayedHead < this.delayed.length) {
      this.timer = setTimeout(() => this.due(), Math.max(1, this.delayed[this.delayedHead][0] - now));
    }
    this.pump();
  }

  pump() {
    while (this.readyHead < this.ready.length) {
      const session = this.receiverWithRoom();
      if (session === null) break;
      const receipt = this.ready[this.readyHead];
      this.ready[this.readyHead] = undefined;
      this.readyHead += 1;
      deliver(session, receipt, this);
    }
    compact(this, 'ready', 'readyHead');
  }

  receiverWithRoom() {
    for (let tried = 0; tried < this.receivers.length; tried += 1) {
      this.turn = (this.turn + 1) % this.receivers.length;
      const session = this.receivers[this.turn];
      if (session.inFlight.size < config.receiptWindow) return session;
    }
    return null;
  }

  detach(session) {
    const at = this.receivers.indexOf(session);
    if (at >= 0) this.receivers.splice(at, 1);
    for (const receipt of session.inFlight.values()) this.ready.push(receipt);  // sent, never answered: again
    session.inFlight.clear();
  }
}

function compact(queue, list, head) {
  if (queue[head] > 4096 && queue[head] * 2 > queue[list].length) {
    queue[list] = queue[list].slice(queue[head]);
    queue[head] = 0;
  }
}

const queues = new Map();
const pumpsDue = new Set();

function queueOf(systemId) {
  let queue = queues.get(systemId);
  if (queue === undefined) queues.set(systemId, queue = new ReceiptQueue());
  return queue;
}

function schedulePump(queue) {
  if (pumpsDue.size === 0) setImmediate(pumpAll);
  pumpsDue.add(queue);
}

function pumpAll() {
  const due = [...pumpsDue];
  pumpsDue.clear();
  for (const queue of due) queue.pump();
}

function deliver(session, receipt, queue) {
  const pdu = new smpp.PDU('deliver_sm', receipt);
  send(session, pdu, (resp) => {
    stats.deliver_sm_resp += 1;
    if (session.inFlight.delete(pdu.sequence_number) === false) return;
    if (resp.command_status === 0) {
      stats.receipts_acked += 1;
      stats.receipts_pending -= 1;
    } else if (RETRY_STATUSES.has(resp.command_status)) {
      setTimeout(() => queue.again(receipt), RETRY_AFTER_MS);
    } else {
      stats.receipts_dropped += 1;
      stats.receipts_pending -= 1;
    }
    if (queue.readyHead < queue.ready.length) schedulePump(queue);
  });
  session.inFlight.set(pdu.sequence_number, receipt);
  stats.receipts_sent += 1;
}

// --- sessions --------------------------------------------------------------------------------------------------

function send(session, pdu, onResponse) {
  const socket = session.socket;
  if (!socket.corkedBySmsc) {  // everything sent in this tick goes out in one write
    socket.corkedBySmsc = true;
    socket.cork();
    process.nextTick(() => { socket.corkedBySmsc = false; socket.uncork(); });
  }
  session.send(pdu, onResponse);
}

function onBind(session, pdu) {
  if (session.bound !== null) {
    send(session, pdu.response({command_status: smpp.ESME_RALYBND}));
    return;
  }
  if (pdu.system_id !== config.systemId || pdu.password !== config.password) {
    stats.bind_refused += 1;
    send(session, pdu.response({command_status: smpp.ESME_RBINDFAIL}));
    session.close();
    return;
  }
  send(session, pdu.response({system_id: 'smsportal-local'}));
  session.bound = pdu.command;
  session.systemId = pdu.system_id;
  stats.binds += 1;
  stats.sessions += 1;
  if (pdu.command !== 'bind_transmitter') {
    const queue = queueOf(pdu.system_id);
    queue.receivers.push(session);
    schedulePump(queue);
  }
}

function onSubmit(session, pdu) {
  if (session.bound === null || session.bound === 'bind_receiver') {
    send(session, pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
    return;
  }
  stats.submit_sm += 1;
  if (isPart(pdu)) stats.submit_sm_parts += 1;
  if (config.silent !== '' && String(pdu.destination_addr).endsWith(config.silent)) {
    logSubmit(pdu, '');
    return;
  }
  const id = messageId();
  send(session, pdu.response({message_id: id}));
  logSubmit(pdu, id);
  const receipt = receiptFor(pdu, id, stamp());
  if (receipt !== null) queueOf(session.systemId).add(receipt);
}

function onClose(session) {
  if (session.bound === null) return;
  stats.sessions -= 1;
  session.bound = null;
  const queue = queueOf(session.systemId);
  queue.detach(session);
  schedulePump(queue);
}

const server = smpp.createServer((session) => {
  session.bound = null;
  session.inFlight = new Map();  // deliver_sm sequence -> receipt, until its deliver_sm_resp
  session.on('error', () => session.destroy());
  session.on('close', () => onClose(session));
  for (const bind of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) {
    session.on(bind, (pdu) => onBind(session, pdu));
  }
  session.on('submit_sm', (pdu) => onSubmit(session, pdu));
  session.on('enquire_link', (pdu) => send(session, pdu.response()));
  session.on('unbind', (pdu) => {
    send(session, pdu.response());
    onClose(session);  // nothing more goes to it; what it had in flight is queued again
    session.close();
  });
  session.on('pdu', (pdu) => {
    if (!pdu.isResponse() && !KNOWN.has(pdu.command)) {
      send(session, pdu.response({command_status: smpp.ESME_RINVCMDID}));
    }
  });
});
const KNOWN = new Set(['bind_transceiver', 'bind_transmitter', 'bind_receiver', 'submit_sm', 'enquire_link', 'unbind']);

// --- start and stop --------------------------------------------------------------------------------------------

function statsServer(done) {
  if (config.statsPort === null) return done();
  const statsHttp = http.createServer((request, response) => {
    const found = request.method === 'GET' && request.url.split('?')[0] === '/stats';
    response.writeHead(found ? 200 : 404, {'Content-Type': 'application/json'});
    response.end(found ? JSON.stringify(stats) : '{"error":"not found"}');
  });
  statsHttp.listen(config.statsPort, '127.0.0.1', () => {
    process.stdout.write(`stats ${statsHttp.address().port}\n`);
    done();
  });
}

function stop() {
  logFlush();
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
server.on('error', (error) => {
  process.stderr.write(`smsc.js: ${error.message}\n`);
  process.exit(1);
});
statsServer(() => server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${server.address().port}\n`);
}));
