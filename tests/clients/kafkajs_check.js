#!/usr/bin/env node
// Seedlog real-client check with kafkajs (pure JavaScript), installed by scripts/install-test-deps
// into tests/clients/node/node_modules.
//
// Creates the topic (admin.createTopics), produces keyed records with acks=all, consumes them from
// the beginning of partition 0, checks order and content, lists offsets (earliest, latest, by
// timestamp) and describes the cluster. Prints one PASS line or a FAIL line with the differences,
// and exits 0, 1 (a mismatch) or 2 (the deadline passed).
//
// kafkajs's consumer only works inside a consumer group (no assign()), so the partition is read
// the way an assigned consumer does: Fetch requests from the partition's leader, through
// kafkajs's own cluster and broker classes (internal, pinned by package-lock.json), with no group.
//
//   node tests/clients/kafkajs_check.js --bootstrap 127.0.0.1:9092 --topic t1
'use strict'

const path = require('path')
const nodeModules = path.join(__dirname, 'node', 'node_modules')
const { Kafka, logLevel } = require(path.join(nodeModules, 'kafkajs'))
const Cluster = require(path.join(nodeModules, 'kafkajs', 'src', 'cluster'))
const { createLogger } = require(path.join(nodeModules, 'kafkajs', 'src', 'loggers'))
const LoggerConsole = require(path.join(nodeModules, 'kafkajs', 'src', 'loggers', 'console'))
const socketFactory = require(path.join(nodeModules, 'kafkajs', 'src', 'network', 'socketFactory'))
const VERSION = require(path.join(nodeModules, 'kafkajs', 'package.json')).version
const CLIENT = `kafkajs ${VERSION} (node ${process.version})`

function parseArgs (argv) {
  const args = { records: 500, noCreate: false, replicationFactor: 1, deadline: 60 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--bootstrap') args.bootstrap = next()
    else if (a === '--topic') args.topic = next()
    else if (a === '--records') args.records = parseInt(next(), 10)
    else if (a === '--replication-factor') args.replicationFactor = parseInt(next(), 10)
    else if (a === '--deadline') args.deadline = parseFloat(next())
    else if (a === '--no-create') args.noCreate = true
    else usage(`unknown argument ${a}`)
  }
  if (!args.bootstrap || !args.topic) usage('--bootstrap and --topic are required')
  return args
}

function usage (why) {
  console.error(`kafkajs_check.js: ${why}`)
  console.error('usage: node kafkajs_check.js --bootstrap HOST:PORT --topic NAME ' +
    '[--records N] [--no-create] [--replication-factor R] [--deadline SECONDS]')
  process.exit(64)
}

let step = 'start'
const notes = []
const started = Date.now()

function at (s) {
  step = s
  process.stderr.write(`  .. ${s}\n`)
}

class Mismatch extends Error {
  constructor (detail, diffs = []) {
    super(detail)
    this.diffs = diffs
  }
}

function fail (detail, diffs = []) {
  throw new Mismatch(detail, diffs)
}

function expectEqual (what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
  }
}

// The i-th record every check writes (the same as tests/clients/common.py).
function record (i, baseTs) {
  const key = `k${String(i).padStart(6, '0')}`
  const value = `value-${String(i).padStart(6, '0')}-` + 'x'.repeat(i % 37)
  return { offset: i, key, value, headers: { idx: String(i) }, timestamp: baseTs + i }
}

function diffRecords (want, got) {
  const lines = []
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    const w = JSON.stringify(want[i])
    const g = JSON.stringify(got[i])
    if (w !== g) lines.push(`position ${i}: want ${w}, got ${g}`)
  }
  return lines
}

async function main (args) {
  const n = args.records
  const baseTs = Date.now() - n - 1000
  const want = []
  for (let i = 0; i < n; i++) want.push(record(i, baseTs))

  const retry = { retries: 5, initialRetryTime: 200, maxRetryTime: 2000 }
  const kafka = new Kafka({
    clientId: 'seedlog-kafkajs-check',
    brokers: [args.bootstrap],
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry,
    logLevel: logLevel.WARN
  })
  const admin = kafka.admin({ retry })
  at('connect (admin)')
  await admin.connect()

  if (!args.noCreate) {
    at('create topic')
    const created = await admin.createTopics({
      topics: [{ topic: args.topic, numPartitions: 1, replicationFactor: args.replicationFactor }],
      waitForLeaders: true,
      timeout: 10000
    })
    if (!created) fail(`createTopics: topic '${args.topic}' already existed`)
    notes.push(`created '${args.topic}'`)
  }

  at('wait for a leader')
  let leader = -1
  const waitUntil = Date.now() + 20000
  let last = 'no answer'
  while (leader < 0 && Date.now() < waitUntil) {
    try {
      const md = await admin.fetchTopicMetadata({ topics: [args.topic] })
      const parts = md.topics[0].partitions
      const p0 = parts.find(p => p.partitionId === 0)
      if (p0 && p0.leader >= 0) {
        if (!args.noCreate && parts.length !== 1) fail(`topic has ${parts.length} partitions, want 1`)
        leader = p0.leader
      } else last = JSON.stringify(parts)
    } catch (e) {
      if (e instanceof Mismatch) throw e
      last = String(e)
    }
    if (leader < 0) await new Promise(resolve => setTimeout(resolve, 200))
  }
  if (leader < 0) fail(`no leader for partition 0: ${last}`)

  at('produce')
  const producer = kafka.producer({
    idempotent: false,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    retry
  })
  await producer.connect()
  const acks = []
  // Two sends, so the log holds at least two batches; each send is one batch for partition 0.
  for (const part of [want.slice(0, Math.floor(n / 2)), want.slice(Math.floor(n / 2))]) {
    const meta = await producer.send({
      topic: args.topic,
      acks: -1,
      timeout: 30000,
      messages: part.map(r => ({
        key: r.key, value: r.value, headers: r.headers, partition: 0, timestamp: String(r.timestamp)
      }))
    })
    for (const m of meta) {
      acks.push({ partition: m.partition, errorCode: m.errorCode, baseOffset: m.baseOffset })
    }
  }
  expectEqual('acknowledgements (one per send)', acks, [
    { partition: 0, errorCode: 0, baseOffset: '0' },
    { partition: 0, errorCode: 0, baseOffset: String(Math.floor(n / 2)) }
  ])
  await producer.disconnect()
  notes.push(`produced ${n} records acks=all at offsets 0..${n - 1}`)

  at('consume from the beginning (partition 0, no group)')
  const logger = createLogger({ level: logLevel.WARN, logCreator: LoggerConsole })
  const cluster = new Cluster({
    logger,
    brokers: [args.bootstrap],
    clientId: 'seedlog-kafkajs-check-fetch',
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry,
    offsets: new Map(),
    socketFactory: socketFactory(),
    allowAutoTopicCreation: false
  })
  await cluster.connect()
  await cluster.addTargetTopic(args.topic)
  const leaders = cluster.findLeaderForPartitions(args.topic, [0])
  const leaderId = Object.keys(leaders).find(id => leaders[id].includes(0))
  const broker = await cluster.findBroker({ nodeId: leaderId })
  const got = []
  let fetchOffset = 0
  const readUntil = Date.now() + 20000
  let emptyAfterAll = 0
  while (Date.now() < readUntil && emptyAfterAll < 2) {
    const response = await broker.fetch({
      replicaId: -1,
      isolationLevel: 0,
      maxWaitTime: 200,
      minBytes: 1,
      maxBytes: 1048576,
      topics: [{ topic: args.topic, partitions: [{ partition: 0, fetchOffset: String(fetchOffset), maxBytes: 1048576 }] }]
    })
    const p = response.responses[0].partitions[0]
    if (p.errorCode !== 0) fail(`fetch at offset ${fetchOffset}: error code ${p.errorCode}`)
    let fresh = 0
    for (const m of p.messages) {
      const offset = parseInt(m.offset, 10)
      if (offset < fetchOffset) continue // a batch is returned whole; skip what came before
      const headers = {}
      for (const [k, v] of Object.entries(m.headers || {})) headers[k] = v.toString()
      got.push({
        offset,
        key: m.key === null ? null : m.key.toString(),
        value: m.value === null ? null : m.value.toString(),
        headers,
        timestamp: parseInt(m.timestamp, 10)
      })
      fetchOffset = offset + 1
      fresh++
    }
    if (got.length >= n && fresh === 0) emptyAfterAll++
  }
  await cluster.disconnect()
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    fail(`consumed ${got.length} records, want ${n} equal to those produced`, diffRecords(want, got))
  }
  notes.push(`consumed ${n} in order with keys, values, headers, timestamps`)

  at('list offsets')
  const offsets = await admin.fetchTopicOffsets(args.topic)
  const o0 = offsets.find(o => o.partition === 0)
  expectEqual('fetchTopicOffsets low/high', [o0.low, o0.high], ['0', String(n)])
  const timestamps = want.map(r => r.timestamp)
  for (const target of [baseTs + Math.floor(n / 3), baseTs - 5, baseTs + n + 1000]) {
    const found = await admin.fetchTopicOffsetsByTimestamp(args.topic, target)
    let expected = timestamps.findIndex(ts => ts >= target)
    if (expected < 0) expected = n // kafkajs answers the high watermark when no record matches
    expectEqual(`offset for timestamp base+${target - baseTs}`,
      found.find(o => o.partition === 0).offset, String(expected))
  }
  notes.push(`offsets earliest 0, latest ${n}, by timestamp ok`)

  at('describe cluster')
  const described = await admin.describeCluster()
  const nodes = {}
  for (const b of described.brokers) nodes[`${b.host}:${b.port}`] = b.nodeId
  if (!described.clusterId) fail(`describeCluster: no cluster id in ${JSON.stringify(described)}`)
  if (!(args.bootstrap in nodes)) {
    fail(`describeCluster: bootstrap ${args.bootstrap} not among the nodes ${JSON.stringify(nodes)}`)
  }
  if (described.controller === null || described.controller < 0) {
    fail(`describeCluster: no controller in ${JSON.stringify(described)}`)
  }
  if (!Object.values(nodes).includes(leader)) {
    fail(`leader ${leader} of partition 0 is not a described node ${JSON.stringify(nodes)}`)
  }
  notes.push(`cluster '${described.clusterId}' with ${described.brokers.length} node(s)`)
  await admin.disconnect()
}

const args = parseArgs(process.argv.slice(2))
setTimeout(() => {
  console.log(`FAIL ${CLIENT}: gave up after ${args.deadline}s during step '${step}'`)
  process.exit(2)
}, args.deadline * 1000).unref()

main(args).then(() => {
  console.log(`PASS ${CLIENT}: ${notes.join('; ')} (${((Date.now() - started) / 1000).toFixed(1)}s)`)
  process.exit(0)
}, e => {
  if (!(e instanceof Mismatch)) process.stderr.write(`${e.stack || e}\n`)
  console.log(`FAIL ${CLIENT}: step '${step}': ${e instanceof Mismatch ? e.message : `${e.name}: ${e.message}`}`)
  const diffs = e.diffs || []
  for (const d of diffs.slice(0, 20)) console.log(`    ${d}`)
  if (diffs.length > 20) console.log(`    ... and ${diffs.length - 20} more differences`)
  process.exit(1)
})
