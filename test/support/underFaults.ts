import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite } from '../../devhost/azurite';
import { type QueuesOptions, readHostJson } from '../../devhost/hostJson';
import { asFunctionInput, type QueueFunction, QueueListener } from '../../devhost/queueListener';
import type { DataverseEvent } from '../../src/dataverse';
import { largeCreateMultiple } from '../../src/dataverse/samplePayloads';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import { acceptWebhook } from '../../src/pipeline/accept';
import { parseEnvelope } from '../../src/pipeline/envelope';
import { recordPoisonedMessage, replayFailures, sweepPoisonQueue } from '../../src/pipeline/failures';
import { processEnvelope } from '../../src/pipeline/process';
import { type ProcessSettings, readIngestSettings, readProcessSettings } from '../../src/settings';
import { createStorageClients } from '../../src/storage/clients';
import { type FaultyStorage, faultyStorage } from './faultyProxy';
import { allRealPayloads } from './fixtures';
import { dataverseHeaders, FUNCTION_URL } from './requests';

/**
 * The whole path under the faults production sees, against a real (fresh, in-memory) Azurite:
 * Dataverse posting events (and posting again after a 503, or for no reason), several instances
 * each with its own connections and queue listeners (the host's rules, devhost/queueListener.ts),
 * storage outages (connections reset, or hung) for all of them at once, handlers that throw or hang
 * once, and instances that crash, some right between an effect and its done-mark.
 *
 * Every effect is counted per event. What must hold: every event answered 202 had its effect (after
 * an operator replays what `failures` lists), and no event had it twice unless a crash fell between
 * its effect and its done-mark.
 */

export interface FaultPlan {
  events: number;
  /** Dataverse spreads the events over this long, so faults fall on work in flight. */
  ingestOverMs: number;
  instances: number;
  /** Every nth event is a 300 KB CreateMultiple, which travels by claim check. */
  claimCheckEvery: number;
  /** Storage outages for every connection at once: when (ms after the start), how long, and how. */
  outages: Array<{ atMs: number; forMs: number; fault: 'reset' | 'hang' }>;
  /** Instance crashes (no warning, nothing completes), ms after the start. */
  crashesAtMs: number[];
  /** Shares of events whose handler throws once, hangs once (ignoring its signal), or crashes its instance right after its effect. */
  throwOnce: number;
  hangOnce: number;
  crashAfterEffect: number;
  /** Shares of events Dataverse posts twice (a lost answer, a retry of its own). */
  postedTwice: number;
}

export interface FaultReport {
  elapsedMs: number;
  /** Events answered 202 (first try or Dataverse's retry after a 503). */
  accepted: number;
  /** Events answered 503 twice: Dataverse gave up on them. */
  givenUp: number;
  /** 503 answers, and the slowest of them. */
  unavailable: number;
  slowest503Ms: number;
  every503HadRetryAfter: boolean;
  /** Accepted events with no effect at the end (must be none). */
  lost: string[];
  /** Events whose effect happened twice or more, and those of them no crash explains (must be none). */
  repeated: string[];
  repeatedWithoutCrash: string[];
  /** Events given up by Dataverse whose effect happened anyway (a 503 is "not confirmed"). */
  givenUpButProcessed: number;
  crashes: number;
  crashesBetweenEffectAndDone: number;
  replayRounds: number;
  replayed: number;
  storageDeadlineMs: number;
}

/** A share of events picked by a hash of the event's key, so a plan is the same on every run. */
function picked(key: string, salt: string, share: number): boolean {
  return createHash('sha256').update(`${salt}|${key}`).digest().readUInt32BE(0) / 2 ** 32 < share;
}

function distinctDelivery(body: Buffer, correlationId: string): Buffer {
  const context = JSON.parse(body.toString('utf8').replace(/^\uFEFF/, '')) as Record<string, unknown>;
  context.CorrelationId = correlationId;
  context.OperationId = randomUUID();
  context.RequestId = randomUUID();
  return Buffer.from(JSON.stringify(context));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Instance {
  id: number;
  network: FaultyStorage;
  listeners: QueueListener[];
  /** Events whose effect happened here and whose processing has not finished. */
  effectsInFlight: Set<string>;
  crashed: boolean;
}

export async function runUnderFaults(plan: FaultPlan): Promise<FaultReport> {
  const azurite = await startAzurite();
  const networks: FaultyStorage[] = [];
  const instances: Instance[] = [];
  try {
    const started = Date.now();
    const names = { eventsQueue: 'dataverse-events' };
    // Production's SDK retries, a shorter try timeout so hung connections give up within the test.
    const clientsOver = (network: FaultyStorage) =>
      createStorageClients(network.connectionString, { names, retry: { maxTries: 3, tryTimeoutMs: 2_000 } });
    const storageDeadlineMs = 1_500;
    // host.json's rules, faster: attempts 1 s apart, a 3 s receive lease (renewed at half), quick polls.
    const queues: QueuesOptions = {
      ...readHostJson(path.resolve(__dirname, '..', '..')).queues,
      visibilityTimeoutMs: 1_000,
      maxPollingIntervalMs: 200,
    };
    const leaseSeconds = 3;
    // The ledger's lease outlasts an outage and the retries of a done-mark (as 300 s does in production).
    const settings: ProcessSettings = { ...readProcessSettings({}), leaseMs: 15_000, handlerTimeoutMs: 400 };

    const effects = new Map<string, number>();
    const crashWindow = new Set<string>();
    const firstRun = new Set<string>();
    let crashes = 0;

    const handlers = (instance: Instance) =>
      registryOf([
        on({ name: 'effect', entity: '*', message: '*' }, async (event: DataverseEvent) => {
          // A crashed instance does nothing more: the work it had in flight never gets this far.
          if (instance.crashed) return new Promise<void>(() => undefined);
          const key = event.correlationId;
          const first = !firstRun.has(key);
          firstRun.add(key);
          if (first && picked(key, 'throw', plan.throwOnce)) throw new Error('the downstream API answered 500');
          // Ignores its signal, as a careless handler would: the processor stops waiting at its limit.
          if (first && picked(key, 'hang', plan.hangOnce)) return new Promise<void>(() => undefined);
          effects.set(key, (effects.get(key) ?? 0) + 1);
          instance.effectsInFlight.add(key);
          if (first && picked(key, 'crash', plan.crashAfterEffect)) crash(instance);
        }),
      ]);

    const startInstance = async (id: number): Promise<Instance> => {
      const network = await faultyStorage(azurite.ports);
      networks.push(network);
      const storage = clientsOver(network);
      const queueService = QueueServiceClient.fromConnectionString(network.connectionString, {
        retryOptions: { maxTries: 3, tryTimeoutInMs: 2_000 },
      });
      const instance: Instance = { id, network, listeners: [], effectsInFlight: new Set(), crashed: false };
      const registry = handlers(instance);
      // One listener per queue-triggered function, as the host runs them.
      const listen = (queueName: string, run: QueueFunction) =>
        new QueueListener({ queueService, queueName, queues, leaseSeconds, onUnhandledError: () => undefined, run });
      const events = listen(storage.names.eventsQueue, async ({ body, message }) => {
        const envelope = parseEnvelope(asFunctionInput(body));
        const key = envelope.summary.correlationId;
        try {
          await processEnvelope(envelope, { storage, handlers: registry, settings, log: silentLog, deliveryCount: message.dequeueCount });
        } finally {
          if (!instance.crashed) instance.effectsInFlight.delete(key);
        }
      });
      const poison = listen(storage.poisonQueue.name, async ({ body, message }) => {
        await recordPoisonedMessage(
          asFunctionInput(body),
          { storage, poisonQueue: storage.poisonQueue, log: silentLog, requeueDelaySeconds: 1 },
          { messageId: message.messageId },
        );
      });
      instance.listeners.push(events, poison);
      events.start();
      poison.start();
      return instance;
    };

    /** A crash: the instance's connections hang and its listeners stop dead; a new instance takes its place. */
    const crashed: Instance[] = [];
    function crash(instance: Instance): void {
      if (instance.crashed) return;
      instance.crashed = true;
      crashed.push(instance);
      crashes++;
      instance.network.down('hang');
      for (const listener of instance.listeners) listener.abandon();
      for (const key of instance.effectsInFlight) crashWindow.add(key);
      const index = instances.indexOf(instance);
      void startInstance(instance.id + plan.instances).then((replacement) => {
        instances[index] = replacement;
      });
    }

    for (let id = 0; id < plan.instances; id++) instances.push(await startInstance(id));

    // Faults on a schedule; a crashed instance's connections stay dead through them.
    const timers: NodeJS.Timeout[] = [];
    const alive = () => networks.filter((network) => !crashed.some((instance) => instance.network === network));
    for (const outage of plan.outages) {
      timers.push(setTimeout(() => alive().forEach((network) => network.down(outage.fault)), outage.atMs));
      timers.push(setTimeout(() => alive().forEach((network) => network.up()), outage.atMs + outage.forMs));
    }
    for (const [index, atMs] of plan.crashesAtMs.entries())
      timers.push(setTimeout(() => crash(instances[index % instances.length]!), atMs));

    // Dataverse: 16 posts at a time; after a 503 it posts once more, as it does.
    const front = await faultyStorage(azurite.ports);
    networks.push(front);
    const frontStorage = clientsOver(front);
    const ingestSettings = { ...readIngestSettings({}), storageDeadlineMs };
    const payloads = allRealPayloads().map((payload) => payload.body);
    const large = Buffer.from(largeCreateMultiple(300 * 1024));
    const accepted = new Set<string>();
    const givenUp = new Set<string>();
    const unavailable: number[] = [];
    let every503HadRetryAfter = true;
    const post = async (body: Buffer): Promise<number> => {
      const postedAt = Date.now();
      const result = await acceptWebhook(
        { method: 'POST', url: FUNCTION_URL, headers: new Headers(dataverseHeaders()), body: async () => body },
        { settings: ingestSettings, storage: frontStorage, log: silentLog },
      );
      if (result.response.status === 503) {
        unavailable.push(Date.now() - postedAt);
        if (result.response.headers?.['Retry-After'] === undefined) every503HadRetryAfter = false;
      }
      return result.response.status;
    };
    let next = 0;
    const sender = async () => {
      while (next < plan.events) {
        const index = next++;
        const due = started + (index * plan.ingestOverMs) / plan.events;
        if (due > Date.now()) await sleep(due - Date.now());
        const key = randomUUID();
        const body = distinctDelivery(
          index % plan.claimCheckEvery === plan.claimCheckEvery - 1 ? large : payloads[index % payloads.length]!,
          key,
        );
        let status = await post(body);
        if (status === 503) status = await post(body);
        if (status === 202) accepted.add(key);
        else givenUp.add(key);
        if (picked(key, 'twice', plan.postedTwice)) await post(body);
      }
    };
    await Promise.all(Array.from({ length: 16 }, sender));

    // Let every instance work the queue off; then do what an operator does: replay what failures lists.
    let replayRounds = 0;
    let replayed = 0;
    const operator = clientsOver(front);
    const done = () => [...accepted].every((key) => (effects.get(key) ?? 0) > 0);
    const deadline = Date.now() + 240_000;
    for (;;) {
      let idleSince = Date.now();
      let last = -1;
      while (!done() && Date.now() - idleSince < 20_000 && Date.now() < deadline) {
        const total = [...effects.values()].reduce((sum, count) => sum + count, 0);
        if (total !== last) {
          last = total;
          idleSince = Date.now();
        }
        await sleep(200);
      }
      if (done() || Date.now() >= deadline) break;
      replayRounds++;
      await sweepPoisonQueue({ storage: operator, poisonQueue: operator.poisonQueue, log: silentLog });
      replayed += (await replayFailures('all', { storage: operator })).filter((result) => result.replayed).length;
    }
    timers.forEach(clearTimeout);

    const repeated = [...effects].filter(([, count]) => count > 1).map(([key]) => key);
    return {
      elapsedMs: Date.now() - started,
      accepted: accepted.size,
      givenUp: givenUp.size,
      unavailable: unavailable.length,
      slowest503Ms: Math.max(0, ...unavailable),
      every503HadRetryAfter,
      lost: [...accepted].filter((key) => !effects.has(key)),
      repeated,
      repeatedWithoutCrash: repeated.filter((key) => !crashWindow.has(key)),
      givenUpButProcessed: [...givenUp].filter((key) => effects.has(key)).length,
      crashes,
      crashesBetweenEffectAndDone: crashWindow.size,
      replayRounds,
      replayed,
      storageDeadlineMs,
    };
  } finally {
    for (const instance of instances)
      await Promise.all(instance.listeners.map((listener) => (instance.crashed ? listener.abandon() : listener.stop())));
    await Promise.all(networks.map((network) => network.close()));
    await azurite.stop();
  }
}
