// kafkajs over an authenticated listener of `runnel serve`, driven by
// tests/kafka/security_test.py.
//
//   node secure.js BOOTSTRAP TOPIC CA.pem scram USER PASSWORD
//   node secure.js BOOTSTRAP TOPIC CA.pem mtls CERT.pem KEY.pem
//
// Produces 200 records (acks=-1) over TLS with SCRAM-SHA-512 or a client certificate, then
// reads them back with a group consumer (FindCoordinator must name this listener) and prints
// one JSON line: {"produced": n, "consumed": n}. Exits non-zero with the error otherwise.

'use strict'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, caPath, mode, a, b] = process.argv.slice(2)
const N = 200

async function main() {
  const ssl = { ca: [fs.readFileSync(caPath, 'utf8')] }
  const config = { clientId: 'itest-kafkajs-secure', brokers: [bootstrap], ssl, logLevel: logLevel.NOTHING,
                   retry: { retries: 3 } }
  if (mode === 'scram') {
    config.sasl = { mechanism: 'scram-sha-512', username: a, password: b }
  } else {
    ssl.cert = fs.readFileSync(a, 'utf8')
    ssl.key = fs.readFileSync(b, 'utf8')
  }
  const kafka = new Kafka(config)
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  await admin.disconnect()

  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < N; i++) messages.push({ key: `k${i}`, value: `v${i}` })
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `${topic}-group` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let consumed = 0
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${consumed} of ${N} within 60 s`)), 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value.toString() !== `v${consumed}`) {
          clearTimeout(timer)
          reject(new Error(`record ${consumed} was ${message.value.toString()}`))
          return
        }
        consumed++
        if (consumed === N) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  console.log(JSON.stringify({ produced: N, consumed }))
}

main().catch(e => {
  console.error(`kafkajs: ${e && e.stack ? e.stack : e}`)
  process.exit(1)
})
