// An independent EHR for the interop tests (the IOP, DOC and Alert Manager of IHE PCD), on npm's
// node-hl7-server and node-hl7-client: it listens for our RRG^O16 and device reports and answers each
// with its own ACK (AA), and sends order files to the gateway, printing the acknowledgement it gets.
// Usage: node ehr.js '{"listen": 0, "tls": {"key": "k.pem", "cert": "c.pem"}, "gateway": 2575,
//                      "gatewayTls": {"ca": "c.pem"}, "send": ["order.hl7"]}'
// Prints one JSON line per event: {"event": "listening"|"received"|"ack"|"error", ...}.
'use strict'
const fs = require('fs')
const { Server } = require('node-hl7-server')
const { Client, Message } = require('node-hl7-client')

const config = JSON.parse(process.argv[2])
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const pem = (tls) => tls && Object.fromEntries(Object.entries(tls).map(([k, v]) => [k, fs.readFileSync(v)]))

const server = new Server({ bindAddress: '127.0.0.1', ...(config.tls ? { tls: pem(config.tls) } : {}) })
const inbound = server.createInbound({ port: config.listen }, async (req, res) => {
  const msg = req.getMessage()
  const type = ['MSH.9.1', 'MSH.9.2', 'MSH.9.3'].map((f) => msg.get(f).toString()).join('^')
  out({ event: 'received', type, control: msg.get('MSH.10').toString(), text: msg.toString() })
  await res.sendResponse('AA')
})
inbound.on('listen', () => {
  out({ event: 'listening', port: config.listen })
  if (config.send && config.send.length) send(config.send)
})
inbound.on('data.error', (err) => out({ event: 'error', where: 'inbound', message: String(err) }))

function send (files) {
  const tls = config.gatewayTls ? { ...pem(config.gatewayTls), rejectUnauthorized: true, servername: 'localhost' } : undefined
  const client = new Client({ host: '127.0.0.1', ...(tls ? { tls } : {}) })
  let left = files.length
  const connection = client.createConnection({ port: config.gateway, waitAck: true }, async (res) => {
    const ack = res.getMessage()
    out({ event: 'ack', code: ack.get('MSA.1').toString(), acked: ack.get('MSA.2').toString(), text: ack.toString() })
    if (--left === 0) await connection.close()
  })
  connection.on('client.error', (err) => out({ event: 'error', where: 'client', message: String(err) }))
  for (const file of files) {
    connection.sendMessage(new Message({ text: fs.readFileSync(file, 'utf-8').replace(/\r?\n/g, '\r').trimEnd() }))
  }
}
