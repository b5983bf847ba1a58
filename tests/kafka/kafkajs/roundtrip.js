// kafkajs against `runnel serve`, driven by tests/kafka/kafkajs_test.py (which starts the
// server, writes the input and verifies the output with the same rules as the other clients).
//
//   node roundtrip.js BOOTSTRAP TOPIC PARTITIONS INPUT.ndjson OUTPUT.ndjson TIME_QUERY_MS
//
// Creates the topic (admin.createTopics: CreateTopics + Metadata), produces every input line
// as one keyed record with headers and an explicit timestamp (producer.send, acks=-1),
// reads the offsets (admin.fetchTopicOffsets and fetchTopicOffsetsByTimestamp: ListOffsets)
// and consumes everything back through kafkajs's own Fetch request and record batch decoder.
//
// Why not consumer.run(): kafkajs has only a group consumer (JoinGroup, SyncGroup, offsets),
// and the server has no group coordinator yet. Until it does, records are read the way that
// consumer reads them underneath: broker.fetch() on the partition leader, then `Batch`, on a
// cluster built by the Kafka object exactly as it builds one for its own clients.

'use strict'

const fs = require('fs')
const readline = require('readline')
const { Kafka, logLevel } = require('kafkajs')
const Batch = require('kafkajs/src/consumer/batch')

const [bootstrap, topic, partitionsArg, inputPath, outputPath, timeQueryArg] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const CHUNK = 2000

function fail(message) {
  console.error(`kafkajs: ${message}`)
  process.exit(1)
}

async function readInput() {
  const out = []
  const rl = readline.createInterface({ input: fs.createReadStream(inputPath) })
  for await (const line of rl) {
    if (!line) continue
    const r = JSON.parse(line)
    const headers = {}
    for (const [name, b64] of r.h) headers[name] = Buffer.from(b64, 'base64')
    out.push({ key: r.k, value: r.v, headers, timestamp: String(r.ts) })
  }
  return out
}

function deadline(seconds, what) {
  const at = Date.now() + seconds * 1000
  return progress => {
    if (Date.now() > at) fail(`timed out after ${seconds} s: ${what} ${progress || ''}`)
  }
}

async function main() {
  const started = Date.now()
  const kafka = new Kafka({
    clientId: 'itest-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 3 },
  })

  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  })
  if (!created) fail(`createTopics(${topic}) answered false: the topic already existed`)

  const messages = await readInput()
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false })
  await producer.connect()
  const tProduce = Date.now()
  const used = new Set()
  const check = deadline(120, 'producing with kafkajs')
  for (let i = 0; i < messages.length; i += CHUNK) {
    check(`(record ${i})`)
    const acks = await producer.send({ topic, acks: -1, messages: messages.slice(i, i + CHUNK) })
    for (const a of acks) {
      if (a.errorCode !== 0) fail(`produce to partition ${a.partition}: error ${a.errorCode}`)
      used.add(a.partition)
    }
  }
  const produceSeconds = (Date.now() - tProduce) / 1000
  await producer.disconnect()

  const offsets = await admin.fetchTopicOffsets(topic)
  const high = {}
  let total = 0
  for (const o of offsets) {
    if (o.low !== '0') fail(`partition ${o.partition}: low offset ${o.low}, not 0`)
    high[o.partition] = Number(o.high)
    total += Number(o.high)
  }
  if (total !== messages.length) fail(`high watermarks ${JSON.stringify(high)} add up to ${total}, not ${messages.length}`)
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, Number(timeQueryArg))
  await admin.disconnect()

  // Consume: every partition from offset 0 to its high watermark.
  const createCluster = Object.getOwnPropertySymbols(kafka)
    .map(s => (s.description === 'private:Kafka:createCluster' ? kafka[s] : null))
    .find(f => f != null)
  if (!createCluster) fail('kafkajs no longer has the createCluster hook this test reads with')
  const cluster = createCluster({ allowAutoTopicCreation: false })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  const leaders = cluster.findLeaderForPartitions(topic, [...Array(partitions).keys()])
  const next = {}
  for (let p = 0; p < partitions; p++) next[p] = 0
  const out = fs.createWriteStream(outputPath)
  let received = 0
  const tConsume = Date.now()
  const checkConsume = deadline(120, 'consuming with kafkajs')
  for (const [nodeId, leaderPartitions] of Object.entries(leaders)) {
    const broker = await cluster.findBroker({ nodeId })
    for (;;) {
      const wanted = leaderPartitions.filter(p => next[p] < high[p])
      if (wanted.length === 0) break
      checkConsume(`(${received} records)`)
      const { responses } = await broker.fetch({
        maxWaitTime: 200,
        minBytes: 1,
        maxBytes: 10 * 1024 * 1024,
        isolationLevel: 1,
        topics: [{ topic, partitions: wanted.map(p => ({ partition: p, fetchOffset: String(next[p]), maxBytes: 1024 * 1024 })) }],
      })
      for (const { topicName, partitions: parts } of responses) {
        for (const data of parts) {
          if (data.errorCode !== 0) fail(`fetch ${topicName}/${data.partition}: error ${data.errorCode}`)
          const batch = new Batch(topicName, String(next[data.partition]), data)
          for (const m of batch.messages) {
            const h = Object.entries(m.headers || {}).map(([name, v]) => [name, Buffer.from(v).toString('base64')])
            out.write(JSON.stringify({
              p: data.partition,
              o: Number(m.offset),
              k: m.key.toString('base64'),
              v: m.value.toString('base64'),
              h,
              ts: Number(m.timestamp),
            }) + '\n')
            received += 1
          }
          if (!batch.isEmpty()) next[data.partition] = Number(batch.lastOffset()) + 1
        }
      }
    }
  }
  await new Promise(resolve => out.end(resolve))
  await cluster.disconnect()
  const consumeSeconds = (Date.now() - tConsume) / 1000
  const timeOffsets = {}
  for (const o of byTime) timeOffsets[o.partition] = Number(o.offset)
  console.log(JSON.stringify({
    partitionsUsed: [...used].sort(),
    high,
    timeOffsets,
    received,
    produceSeconds,
    consumeSeconds,
    seconds: (Date.now() - started) / 1000,
  }))
}

main().catch(e => fail(e && e.stack ? e.stack : String(e)))
