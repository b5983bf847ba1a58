// kafkajs transactions against `runnel serve`, driven by tests/kafka/txn_kafkajs_test.py
// (which starts the server and checks what became visible with a read_committed reader).
//
//   node transactions.js BOOTSTRAP TOPIC INPUT_TOPIC GROUP
//
// One transactional producer: a transaction of 100 records plus offsets for GROUP on
// INPUT_TOPIC (send, sendOffsets, commit), then a transaction of 50 records it aborts, then a
// committed one of 10 records. Prints a JSON line with what it did.

'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, inputTopic, group] = process.argv.slice(2)

async function main() {
  const kafka = new Kafka({ clientId: 'itest-kafkajs-txn', brokers: [bootstrap], logLevel: logLevel.WARN })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }, { topic: inputTopic, numPartitions: 1 }] })
  await admin.disconnect()

  const producer = kafka.producer({ transactionalId: 'kafkajs-txn', maxInFlightRequests: 1, idempotent: true })
  await producer.connect()
  const messages = (prefix, n) => Array.from({ length: n }, (_, i) => ({ key: `k${i % 5}`, value: `${prefix}-${i}` }))

  const first = await producer.transaction()
  await first.send({ topic, messages: messages('committed', 100) })
  await first.sendOffsets({
    consumerGroupId: group,
    topics: [{ topic: inputTopic, partitions: [{ partition: 0, offset: '42' }] }],
  })
  await first.commit()

  const second = await producer.transaction()
  await second.send({ topic, messages: messages('aborted', 50) })
  await second.sendOffsets({
    consumerGroupId: group,
    topics: [{ topic: inputTopic, partitions: [{ partition: 0, offset: '99' }] }],
  })
  await second.abort()

  const third = await producer.transaction()
  await third.send({ topic, messages: messages('last', 10) })
  await third.commit()
  await producer.disconnect()
  console.log(JSON.stringify({ committed: 110, aborted: 50 }))
}

main().catch((e) => {
  console.error(`kafkajs: ${e.stack || e}`)
  process.exit(1)
})
