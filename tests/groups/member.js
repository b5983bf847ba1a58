// One kafkajs consumer-group member in its own process, driven by groups_test.py and
// bench/group_bench.py. Speaks the same stdout protocol as member.py:
//
//   ready <t_ms> | A <t_ms> <p>... (assignment after each join) | M <p> <first> <last> | closed
//
//   NODE_PATH=tests/kafka/kafkajs/node_modules node member.js BOOTSTRAP GROUP TOPIC
//       SESSION_TIMEOUT_MS [CLIENT_ID]
//
// Commits as it goes (kafkajs's autoCommit after every batch); stops when stdin closes or on
// SIGTERM: disconnect() commits, leaves the group and closes, then `closed` is printed.

'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, group, topic, sessionArg, clientId] = process.argv.slice(2)
const sessionTimeout = Number(sessionArg || 6000)

function nowMs() {
  return (Number(process.hrtime.bigint()) / 1e6).toFixed(3)
}

function emit(line) {
  process.stdout.write(line + '\n')
}

async function main() {
  const kafka = new Kafka({
    clientId: clientId || 'runnel-group-member-js',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  const consumer = kafka.consumer({
    groupId: group,
    sessionTimeout,
    rebalanceTimeout: Math.max(sessionTimeout, 10000),
    heartbeatInterval: Math.max(100, Math.floor(sessionTimeout / 5)),
    metadataMaxAge: 1000,
    maxWaitTimeInMs: 500,
  })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    emit(['A', nowMs(), ...parts].join(' '))
  })
  consumer.on(consumer.events.CRASH, e => {
    console.error(`kafkajs member crashed: ${e.payload.error && e.payload.error.stack}`)
  })
  let stopping = null
  const stop = () => {
    if (!stopping) {
      stopping = consumer.disconnect().then(() => {
        emit('closed')
        process.exit(0)
      })
    }
  }
  process.stdin.on('end', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)

  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: true,
    eachBatch: async ({ batch }) => {
      const n = batch.messages.length
      if (n === 0) return
      let first = Number(batch.messages[0].offset)
      let prev = first
      for (let i = 1; i < n; i++) {
        const o = Number(batch.messages[i].offset)
        if (o !== prev + 1) {
          emit(`M ${batch.partition} ${first} ${prev}`)
          first = o
        }
        prev = o
      }
      emit(`M ${batch.partition} ${first} ${prev}`)
    },
  })
  emit(`ready ${nowMs()}`)
}

main().catch(e => {
  console.error(`kafkajs member: ${e.stack || e}`)
  process.exit(1)
})
