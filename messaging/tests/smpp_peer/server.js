// A scriptable SMSC for the SMPP client's tests, on node-smpp (the peer is not our code).
//
//   node server.js PORT [SYSTEM_ID] [PASSWORD]
//
// Prints one JSON line per event on stdout: {"event":"listening"} first, then every PDU it receives
// ({"event":"pdu","command":...}) and every response it sends ({"event":"sent",...}). Reads JSON
// commands on stdin, one a line: {"cmd":"config",...} (next_id: the next message id's number), {"cmd":"mo",...}, {"cmd":"enquire_link"}.
//
// submit_sm behaves by the destination's last digits:
//   ...222 never answered          ...444 ESME_RTHROTTLED (0x58)    ...011 ESME_RINVDSTADR (0x0B)
//   ...008 ESME_RSYSERR (0x08)     ...555 answered after config.delay_ms (default 300)
//   ...777 the receipt is sent BEFORE the submit_sm_resp (an "early" receipt)
// Receipts (registered_delivery 1) follow the resp; config.receipts: "text" | "tlv" (text + TLVs) | "none";
// config.stats: the stat of each next receipt, in order (then config.stat).
'use strict';

const readline = require('readline');
// node-smpp is installed once, beside the local SMSC (make local-carriers).
const smpp = require('../../carriers/local/node_modules/smpp');

const port = Number(process.argv[2]);
const systemId = process.argv[3] || 'smsportal';
const password = process.argv[4] || 'secret';

const config = {receipts: 'none', delay_ms: 300, answer_enquire_link: true, stat: 'DELIVRD'};
const sessions = new Set();
let nextId = 1000;
let outstanding = 0;
let maxOutstanding = 0;

function log(event) {
  event.t = Date.now();
  process.stdout.write(JSON.stringify(event) + '\n');
}

function fields(pdu) {
  const out = {command: pdu.command, sequence_number: pdu.sequence_number, command_status: pdu.command_status};
  for (const name of ['system_id', 'source_addr', 'source_addr_ton', 'source_addr_npi', 'destination_addr',
    'dest_addr_ton', 'dest_addr_npi', 'esm_class', 'registered_delivery', 'data_coding', 'message_id']) {
    if (pdu[name] !== undefined) out[name] = pdu[name];
  }
  const sm = pdu.short_message;
  if (sm && typeof sm === 'object' && !Buffer.isBuffer(sm)) {
    out.text = sm.message;
    out.udh = (sm.udh || []).map((part) => part.toString('hex'));
  }
  return out;
}

function receiptText(id, stat) {
  const err = stat === 'DELIVRD' ? '000' : '001';
  return `id:${id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:${stat} err:${err} text:hello`;
}

const MESSAGE_STATES = {DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8, ENROUTE: 1};

function sendReceipt(session, submit, id) {
  const stat = (config.stats || []).length ? config.stats.shift() : config.stat;
  const receipt = {
    source_addr: submit.destination_addr, destination_addr: submit.source_addr, esm_class: 0x04, data_coding: 0,
    short_message: Buffer.from(receiptText(config.tlv_text_id || id, stat), 'ascii'),
  };
  if (config.receipts === 'tlv') {
    receipt.receipted_message_id = id;
    receipt.message_state = MESSAGE_STATES[config.tlv_stat || stat];
  }
  session.deliver_sm(receipt, (resp) => log({event: 'receipt_resp', id, command_status: resp.command_status}));
  log({event: 'receipt_sent', id});
}

function answerSubmit(session, pdu) {
  const dest = String(pdu.destination_addr);
  outstanding += 1;
  maxOutstanding = Math.max(maxOutstanding, outstanding);
  const status = dest.endsWith('444') ? smpp.ESME_RTHROTTLED : dest.endsWith('011') ? smpp.ESME_RINVDSTADR
    : dest.endsWith('008') ? smpp.ESME_RSYSERR : 0;
  if (dest.endsWith('222')) return;  // never answered (the client's submit timeout)
  const id = `M${nextId++}`;
  const early = dest.endsWith('777') && pdu.registered_delivery;
  const respond = () => {
    outstanding -= 1;
    if (early) sendReceipt(session, pdu, id);
    const resp = status ? pdu.response({command_status: status}) : pdu.response({message_id: id});
    session.send(resp);
    log({event: 'sent', command: 'submit_sm_resp', sequence_number: pdu.sequence_number, command_status: status,
      message_id: status ? '' : id, max_outstanding: maxOutstanding});
    if (!status && !early && pdu.registered_delivery && config.receipts !== 'none') sendReceipt(session, pdu, id);
  };
  if (dest.endsWith('555')) setTimeout(respond, config.delay_ms); else respond();
}

function bindHandler(session) {
  return (pdu) => {
    const ok = pdu.system_id === systemId && pdu.password === password;
    session.send(pdu.response(ok ? {system_id: 'peer'} : {command_status: smpp.ESME_RINVPASWD}));
    log({event: 'bind', ok, command: pdu.command});
    if (ok) sessions.add(session); else session.close();
  };
}

function sendMo(cmd) {
  for (const session of sessions) {
    for (const part of cmd.parts) {
      const pdu = {source_addr: cmd.from, source_addr_ton: 1, source_addr_npi: 1, destination_addr: cmd.to,
        dest_addr_ton: 1, dest_addr_npi: 1, esm_class: part.udh ? 0x40 : 0, data_coding: cmd.data_coding || 0,
        short_message: Buffer.from((part.udh || '') + part.hex, 'hex')};
      for (const tlv of ['sar_msg_ref_num', 'sar_total_segments', 'sar_segment_seqnum', 'receipted_message_id',
        'user_message_reference']) {
        if (part[tlv] !== undefined) pdu[tlv] = part[tlv];
      }
      session.deliver_sm(pdu, (resp) => log({event: 'mo_resp', command_status: resp.command_status}));
    }
  }
}

const server = smpp.createServer((session) => {
  session.on('error', (err) => log({event: 'error', message: String(err)}));
  session.on('close', () => { sessions.delete(session); log({event: 'close'}); });
  session.on('pdu', (pdu) => log(Object.assign({event: 'pdu'}, fields(pdu))));
  for (const bind of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) session.on(bind, bindHandler(session));
  session.on('submit_sm', (pdu) => answerSubmit(session, pdu));
  session.on('enquire_link', (pdu) => { if (config.answer_enquire_link) session.send(pdu.response()); });
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
});

server.listen(port, '127.0.0.1', () => log({event: 'listening', port}));

readline.createInterface({input: process.stdin}).on('line', (line) => {
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'config') {
    Object.assign(config, cmd);
    if (cmd.next_id !== undefined) nextId = cmd.next_id;  // a restarted SMSC must not hand out old ids again
  }
  else if (cmd.cmd === 'mo') sendMo(cmd);
  else if (cmd.cmd === 'enquire_link') {
    for (const session of sessions) session.enquire_link({}, (resp) => log({event: 'enquire_link_resp_got'}));
  }
  log({event: 'done', cmd: cmd.cmd});
});
