// @platformatic/kafka against `runnel serve`, driven by tests/kafka/platformatic_test.py.
//
//   node groups.mjs consumer BOOTSTRAP TOPIC N   two members of a consumer-protocol group
//       (KIP-848, ConsumerGroupHeartbeat) share a 4-partition topic: both get partitions, every
//       record is consumed and committed once across them; one leaves and the other takes over.
//   node groups.mjs classic BOOTSTRAP TOPIC N    two idempotent producers write N records between
//       them; a classic consumer group (JoinGroup/SyncGroup, Fetch v13+ by topic id) reads them.
//
// Prints one JSON line: what was produced, consumed and by whom. Every wait has a deadline.

import './node20.mjs'
import {
  Admin,
  Consumer,
  Producer,
  stringDeserializers,
  stringSerializers
} from '@platformatic/kafka'

const [mode, bootstrap, topic, countArg] = process.argv.slice(2)
const N = Number(countArg)
const brokers = [bootstrap]
const PARTITIONS = 4

function check (cond, what) {
  if (!cond) throw new Error(what)
}

async function until (cond, what, timeoutMs = 90000) {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

function partitionsOf (consumer) {
  const out = []
  for (const a of consumer.assignments ?? []) {
    if (a.topic === topic) out.push(...a.partitions)
  }
  return out.sort((x, y) => x - y)
}

async function createTopic () {
  const admin = new Admin({ clientId: 'itest-admin', bootstrapBrokers: brokers })
  await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 })
  await admin.close()
}

/// Consumes with a commit after each record; a record counts once its commit is answered.
/// `refreshes()` counts the times the stream moved its positions to the committed offsets
/// (the client does so for every partition whenever its assignment grows).
function consumeInto (consumer, name, seen, duplicates) {
  let stream = null
  let refreshes = 0
  const done = (async () => {
    stream = await consumer.consume({
      topics: [topic],
      autocommit: false,
      mode: 'committed',
      fallbackMode: 'earliest',
      maxWaitTime: 500
    })
    stream.on('offsets', () => { ++refreshes })
    for await (const m of stream) {
      await m.commit()
      if (seen.has(m.key)) duplicates.push({ key: m.key, first: seen.get(m.key), again: name })
      seen.set(m.key, name)
    }
  })()
  return {
    done,
    refreshes: () => refreshes,
    close: async () => { await until(() => stream !== null, 'the stream'); await stream.close() }
  }
}

/// Waits until the group has settled after its assignment changed: every member's stream has
/// finished moving to the committed offsets of its new partitions and the next three
/// heartbeats of every member brought no change. This client moves all of a member's positions
/// back to the committed offsets whenever its assignment grows; a record fetched before that
/// would be delivered a second time, so records are only produced once the group is quiet.
async function settled (members) {
  const heartbeats = new Map(members.map(({ consumer }) => [consumer, 0]))
  const count = consumer => () => heartbeats.set(consumer, heartbeats.get(consumer) + 1)
  const listeners = members.map(({ consumer }) => [consumer, count(consumer)])
  for (const [consumer, listener] of listeners) consumer.on('consumer:heartbeat:end', listener)
  try {
    for (;;) {
      const refreshes = members.map(({ run }) => run.refreshes())
      const beats = members.map(({ consumer }) => heartbeats.get(consumer))
      const quiet = () => members.every(({ consumer }, i) => heartbeats.get(consumer) >= beats[i] + 3)
      const moved = () => members.some(({ run }, i) => run.refreshes() !== refreshes[i])
      await until(() => quiet() || moved(), 'three heartbeats of every member')
      if (!moved()) return
    }
  } finally {
    for (const [consumer, listener] of listeners) consumer.removeListener('consumer:heartbeat:end', listener)
  }
}

async function produce (prefix, n, idempotent, clientId) {
  const producer = new Producer({ clientId, bootstrapBrokers: brokers, serializers: stringSerializers, idempotent })
  const acked = []
  const batch = 50
  for (let i = 0; i < n; i += batch) {
    const messages = []
    for (let j = i; j < Math.min(n, i + batch); ++j) {
      messages.push({ topic, key: `${prefix}-${j}`, value: `value-${prefix}-${j}`, partition: j % PARTITIONS })
    }
    await producer.send({ messages, acks: -1 })
    acked.push(...messages.map(m => m.key))
  }
  const info = { producerId: String(producer.producerId ?? ''), acked }
  await producer.close()
  return info
}

async function consumerProtocol () {
  await createTopic()
  const group = `${topic}-group`
  const make = id => new Consumer({
    groupId: group,
    clientId: id,
    bootstrapBrokers: brokers,
    deserializers: stringDeserializers,
    groupProtocol: 'consumer'
  })
  const seen = new Map()
  const duplicates = []
  const a = make('member-a')
  const b = make('member-b')
  const runA = consumeInto(a, 'a', seen, duplicates)
  const runB = consumeInto(b, 'b', seen, duplicates)
  // Both members own partitions, none twice, all four between them.
  const shared = () => {
    const pa = partitionsOf(a)
    const pb = partitionsOf(b)
    return pa.length > 0 && pb.length > 0 && pa.length + pb.length === PARTITIONS &&
      pa.every(p => !pb.includes(p))
  }
  await until(shared, 'both members to own partitions')
  await settled([{ consumer: a, run: runA }, { consumer: b, run: runB }])
  check(shared(), 'the assignment moved after both members owned partitions')
  const first = { a: partitionsOf(a), b: partitionsOf(b) }
  const phase1 = await produce('one', N, false, 'itest-producer-1')
  await until(() => seen.size === N, `the first ${N} records (have ${seen.size})`)
  const byA = [...seen.values()].filter(v => v === 'a').length
  const byB = [...seen.values()].filter(v => v === 'b').length

  // b leaves the group (ConsumerGroupHeartbeat with epoch -1); a takes its partitions over
  // from b's committed offsets.
  await runB.close()
  await b.close()
  await runB.done
  await until(() => partitionsOf(a).length === PARTITIONS, 'a to own every partition')
  await settled([{ consumer: a, run: runA }])
  const phase2 = await produce('two', N, false, 'itest-producer-2')
  await until(() => seen.size === 2 * N, `all ${2 * N} records (have ${seen.size})`)
  const secondByA = [...seen.entries()].filter(([k, v]) => k.startsWith('two-') && v === 'a').length
  await runA.close()
  await a.close()
  await runA.done
  const produced = [...phase1.acked, ...phase2.acked]
  const missing = produced.filter(k => !seen.has(k))
  return { mode, group, first, byA, byB, secondByA, produced: produced.length, consumed: seen.size, duplicates, missing }
}

async function classicProtocol () {
  await createTopic()
  const half = Math.floor(N / 2)
  const [p1, p2] = await Promise.all([
    produce('p1', half, true, 'itest-idempotent-1'),
    produce('p2', N - half, true, 'itest-idempotent-2')
  ])
  const group = `${topic}-classic`
  const consumer = new Consumer({
    groupId: group,
    clientId: 'itest-classic',
    bootstrapBrokers: brokers,
    deserializers: stringDeserializers,
    sessionTimeout: 10000,
    heartbeatInterval: 500
  })
  const seen = new Map()
  const duplicates = []
  const run = consumeInto(consumer, 'classic', seen, duplicates)
  const acked = [...p1.acked, ...p2.acked]
  await until(() => acked.every(k => seen.has(k)), `every acknowledged record (have ${seen.size} of ${acked.length})`)
  await run.close()
  await consumer.close()
  await run.done
  const missing = acked.filter(k => !seen.has(k))
  return {
    mode,
    group,
    producerIds: [p1.producerId, p2.producerId],
    produced: acked.length,
    consumed: seen.size,
    duplicates,
    missing
  }
}

const deadline = setTimeout(() => {
  console.error('groups.mjs: no result within 180 s')
  process.exit(3)
}, 180000)

try {
  check(N > 0, 'N must be positive')
  const report = mode === 'consumer' ? await consumerProtocol() : await classicProtocol()
  console.log(JSON.stringify(report))
  clearTimeout(deadline)
  process.exit(0)
} catch (e) {
  console.error(e?.stack ?? String(e))
  if (e?.errors) console.error(JSON.stringify(e.errors, null, 1))
  clearTimeout(deadline)
  process.exit(2)
}
