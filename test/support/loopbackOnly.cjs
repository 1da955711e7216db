'use strict';
// Preloaded (node --require) into child processes that run real SDKs in tests: any connection to
// a host that is not this machine is refused before DNS is asked, and reported on stderr, so a
// test can assert that nothing tried to leave the machine.
const net = require('node:net');

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|::ffff:127\.\d+\.\d+\.\d+)$/i;

function targetOf(args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  if (first && typeof first === 'object') return first.path ? null : String(first.host ?? 'localhost');
  if (typeof first === 'string' && Number.isNaN(Number(first))) return null; // an IPC path
  return typeof args[1] === 'string' ? args[1] : 'localhost';
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const host = targetOf(args);
  if (process.env.REPORT_EVERY_CONNECTION) process.stderr.write(`CONNECT ${host ?? 'ipc'}\n`);
  if (host !== null && !LOOPBACK.test(host)) {
    process.stderr.write(`BLOCKED-NON-LOOPBACK ${host}\n`);
    process.nextTick(() => this.destroy(new Error(`connection to ${host} refused: tests stay on this machine`)));
    return this;
  }
  return connect.apply(this, args);
};
