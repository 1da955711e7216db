import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostJsonError, parseHostJson, parseTimeSpan, readHostJson } from '../hostJson';

describe('host.json as the host reads it', () => {
  it("reads the app's own host.json", () => {
    const root = path.join(__dirname, '..', '..');
    const raw = JSON.parse(readFileSync(path.join(root, 'host.json'), 'utf8')) as {
      functionTimeout: string;
      extensions: { queues: Record<string, string | number> };
    };
    const read = readHostJson(root, { processorCount: 2 });
    expect(read.functionTimeoutMs).toBe(parseTimeSpan(raw.functionTimeout));
    expect(read.queues).toMatchObject({
      batchSize: raw.extensions.queues['batchSize'],
      newBatchThreshold: raw.extensions.queues['newBatchThreshold'],
      maxDequeueCount: raw.extensions.queues['maxDequeueCount'],
      visibilityTimeoutMs: parseTimeSpan(String(raw.extensions.queues['visibilityTimeout'])),
      maxPollingIntervalMs: parseTimeSpan(String(raw.extensions.queues['maxPollingInterval'])),
      messageEncoding: raw.extensions.queues['messageEncoding'],
    });
  });

  it("fills what host.json leaves out with the queue extension's defaults (QueuesOptions.cs)", () => {
    expect(parseHostJson('{"version":"2.0"}', { processorCount: 4 })).toEqual({
      functionTimeoutMs: 30 * 60_000,
      routePrefix: 'api',
      queues: {
        batchSize: 16,
        newBatchThreshold: 32,
        maxDequeueCount: 5,
        visibilityTimeoutMs: 0,
        maxPollingIntervalMs: 60_000,
        messageEncoding: 'base64',
      },
    });
    expect(parseHostJson('{"extensions":{"queues":{"batchSize":5}}}', { processorCount: 3 }).queues.newBatchThreshold).toBe(6);
  });

  it('lets AzureFunctionsJobHost__ app settings override host.json, keys in any case', () => {
    const json =
      '{"functionTimeout":"00:05:00","extensions":{"queues":{"maxDequeueCount":5,"visibilityTimeout":"00:00:30"},"http":{"routePrefix":""}}}';
    const read = parseHostJson(json, {
      env: {
        AzureFunctionsJobHost__extensions__queues__maxDequeueCount: '2',
        AZUREFUNCTIONSJOBHOST__EXTENSIONS__QUEUES__VISIBILITYTIMEOUT: '00:00:00',
        AzureFunctionsJobHost__functionTimeout: '-1',
        OtherSetting__extensions__queues__batchSize: '1',
      },
    });
    expect(read.queues).toMatchObject({ maxDequeueCount: 2, visibilityTimeoutMs: 0, batchSize: 16 });
    expect(read.functionTimeoutMs).toBeNull();
    expect(read.routePrefix).toBe('');
  });

  it('reads .NET time spans', () => {
    expect(parseTimeSpan('00:05:00')).toBe(300_000);
    expect(parseTimeSpan('1.02:03:04.5')).toBe(((26 * 60 + 3) * 60 + 4) * 1000 + 500);
    expect(parseTimeSpan('00:00:00.25')).toBe(250);
    expect(parseTimeSpan('2')).toBe(2 * 86_400_000);
    expect(() => parseTimeSpan('5 minutes')).toThrow(HostJsonError);
    expect(() => parseTimeSpan('00:75:00')).toThrow(HostJsonError);
  });

  it('refuses the values the host refuses, naming the setting', () => {
    expect(() => parseHostJson('{"extensions":{"queues":{"batchSize":33}}}')).toThrow(/extensions\.queues\.batchsize: /);
    expect(() => parseHostJson('{"extensions":{"queues":{"maxPollingInterval":"00:00:00.05"}}}')).toThrow(
      /maxpollinginterval: must not be less than 100 ms/,
    );
    expect(() => parseHostJson('{"extensions":{"queues":{"messageEncoding":"utf8"}}}')).toThrow(/messageencoding/);
    expect(() => parseHostJson('{"functionTimeout":"soon"}')).toThrow(/functionTimeout/);
    expect(() => parseHostJson('not json')).toThrow(HostJsonError);
  });
});
