import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { captureIO } from '../support/cliIO';
import { fixture, SAMPLES_DIR } from '../support/fixtures';

const fixtureFile = path.join(SAMPLES_DIR, '03-shko_allfields-create-sync-postop-alltypes.json');

describe('dataverse-webhooks inspect', () => {
  it('prints the normalized event of a file as JSON and exits 0', async () => {
    const io = captureIO();
    expect(await main(['inspect', fixtureFile, '--header', 'x-ms-dynamics-organization: contoso.crm.dynamics.com'], io)).toBe(0);
    const event = JSON.parse(io.out());
    expect(event.messageName).toBe('Create');
    expect(event.target.attributes.shko_currency).toEqual({ $type: 'Money', value: 100 });
    expect(event.target.attributes.shko_datetime).toBe('2023-10-17T07:00:00.000Z');
    expect(event.headers.organization).toBe('contoso.crm.dynamics.com');
    expect(io.err()).toBe('');
  });

  it('reads stdin for "-" and honours the truncation header', async () => {
    const context = JSON.parse(fixture('use-webhooks.md').body.toString());
    delete context.InputParameters;
    const io = captureIO({ stdin: JSON.stringify(context) });
    expect(await main(['inspect', '-', '-H', 'x-ms-dynamics-msg-size-exceeded: true'], io)).toBe(0);
    const event = JSON.parse(io.out());
    expect(event.truncated).toBe(true);
    expect(event.removedProperties).toEqual(['InputParameters']);
  });

  it('prints the error on stderr and exits 1 on invalid input', async () => {
    const io = captureIO({ stdin: '{"MessageName": 42}' });
    expect(await main(['inspect', '-'], io)).toBe(1);
    expect(io.out()).toBe('');
    expect(io.err()).toMatch(/^The body is not a valid Dataverse RemoteExecutionContext: \$\.MessageName: /);
  });

  it('exits 1 for a missing file and 2 for a usage mistake', async () => {
    const missing = captureIO();
    expect(await main(['inspect', '/no/such/file.json'], missing)).toBe(1);
    expect(missing.err()).toContain('No such file');
    const usage = captureIO();
    expect(await main(['inspect'], usage)).toBe(2);
    expect(usage.err()).toBe('inspect takes exactly one file (or - for stdin) (see "dataverse-webhooks inspect --help")\n');
    const badHeader = captureIO();
    expect(await main(['inspect', fixtureFile, '--header', 'no-colon'], badHeader)).toBe(2);
  });

  it('runs as the package bin, as npx runs it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'inspect-'));
    const file = path.join(dir, 'body.json');
    writeFileSync(file, fixture('08-').body);
    const bin = path.resolve(__dirname, '..', '..', 'bin', 'dataverse-webhooks.js');
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'inspect', file]);
    expect(JSON.parse(stdout).primaryEntityName).toBe('account');
    const failed = spawnSync(process.execPath, [bin, 'inspect', '-'], { input: '{}', encoding: 'utf8' });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('$.MessageName');
  });
});
