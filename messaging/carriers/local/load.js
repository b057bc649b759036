// A fast SMPP client on node-smpp, to load smsc.js (bench/smsc_rate.py): one transceiver bind, a window of
// submit_sm with registered_delivery, every receipt answered at once.
//
//   node load.js --port PORT [--system-id local] [--password localpw] [--count 100000] [--window 50]
//                [--receipt-timeout-ms 10000]
//
// Prints one JSON line when every submit is answered and every receipt is in (or the receipt timeout passed):
// {"submitted", "answered", "errors", "receipts", "submit_seconds", "receipt_seconds", "submit_sm_per_s",
//  "receipts_per_s"}; the rates are counted from the first submit.
'use strict';

const smpp = require('./node_modules/smpp');

const given = {port: '2775', 'system-id': 'local', password: 'localpw', count: '100000', window: '50',
  'receipt-timeout-ms': '10000'};
for (let i = 2; i < process.argv.length; i += 2) given[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const count = Number(given.count);
const windowSize = Number(given.window);

const session = smpp.connect({host: '127.0.0.1', port: Number(given.port)});
const text = Buffer.from('Your code is 123456', 'latin1');
let submitted = 0;
let answered = 0;
let errors = 0;
let receipts = 0;
let started = 0;
let submitsDone = 0;
let receiptsDone = 0;

function corked(action) {
  session.socket.cork();
  action();
  process.nextTick(() => session.socket.uncork());
}

function fill() {
  corked(() => {
    while (submitted < count && submitted - answered < windowSize) {
      submitted += 1;
      session.submit_sm({source_addr: 'Load', destination_addr: `4479${String(submitted).padStart(8, '0')}`,
        registered_delivery: 1, data_coding: 0, short_message: text}, onAnswer);
    }
  });
}

function onAnswer(resp) {
  answered += 1;
  if (resp.command_status !== 0) errors += 1;
  if (answered === count) {
    submitsDone = process.hrtime.bigint();
    setTimeout(report, Number(given['receipt-timeout-ms'])).unref();
    check();
  } else {
    fill();
  }
}

session.on('deliver_sm', (pdu) => {
  corked(() => session.send(pdu.response()));
  receipts += 1;
  if (answered === count) check();
});

function check() {
  if (receipts >= count - errors && answered === count) {
    receiptsDone = process.hrtime.bigint();
    report();
  }
}

function seconds(end) {
  return Number(end - started) / 1e9;
}

let reported = false;

function report() {
  if (reported) return;
  reported = true;
  const end = process.hrtime.bigint();
  const submitSeconds = seconds(submitsDone || end);
  const receiptSeconds = seconds(receiptsDone || end);
  process.stdout.write(JSON.stringify({submitted, answered, errors, receipts, submit_seconds: submitSeconds,
    receipt_seconds: receiptSeconds, submit_sm_per_s: Math.round(answered / submitSeconds),
    receipts_per_s: Math.round(receipts / receiptSeconds)}) + '\n');
  session.unbind(() => session.close());
  setTimeout(() => process.exit(0), 500).unref();
}

session.on('connect', () => {
  session.bind_transceiver({system_id: given['system-id'], password: given.password}, (resp) => {
    if (resp.command_status !== 0) {
      process.stderr.write(`load.js: bind refused (0x${resp.command_status.toString(16)})\n`);
      process.exit(1);
    }
    started = process.hrtime.bigint();
    fill();
  });
});
session.on('error', (error) => {
  process.stderr.write(`load.js: ${error.message}\n`);
  process.exit(1);
});
