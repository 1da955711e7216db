import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRegistration } from '../../src/registration/definition';

const valid = {
  endpoint: { name: 'hook', url: 'https://func.azurewebsites.net/api/dataverse/webhook', auth: { type: 'WebhookKey' } },
  steps: [{ table: 'account', message: 'Update', filteringAttributes: ['name'] }],
};

function problems(registration: unknown): string {
  try {
    parseRegistration(JSON.stringify(registration), 'webhook.json');
    return '';
  } catch (error) {
    return String(error);
  }
}

describe('the registration file', () => {
  it('applies the defaults: PostOperation, Asynchronous, rank 1, enabled, no images', () => {
    const registration = parseRegistration(JSON.stringify(valid), 'webhook.json');
    expect(registration.steps[0]).toEqual({
      table: 'account',
      message: 'Update',
      filteringAttributes: ['name'],
      stage: 'PostOperation',
      mode: 'Asynchronous',
      rank: 1,
      asyncAutoDelete: false,
      enabled: true,
      images: [],
    });
  });

  it('the repository’s own file is valid', () => {
    const file = path.resolve(__dirname, '..', '..', 'registration', 'webhook.json');
    expect(parseRegistration(readFileSync(file, 'utf8'), file).steps.length).toBeGreaterThan(0);
  });

  it('refuses a URL that is not https, or that carries the key', () => {
    expect(problems({ ...valid, endpoint: { ...valid.endpoint, url: 'http://func.azurewebsites.net/api/x' } })).toContain('$.endpoint.url: must be an https URL');
    expect(problems({ ...valid, endpoint: { ...valid.endpoint, url: 'https://func.azurewebsites.net/api/x?code=abc' } })).toContain('must not carry ?code=');
    expect(problems({ ...valid, endpoint: { ...valid.endpoint, url: 'https://func.azurewebsites.net/api/x?code=abc' } })).not.toContain('abc');
  });

  it('refuses a secret written into the file instead of an environment variable name', () => {
    const auth = { type: 'HttpHeader', settings: [{ name: 'x-key', value: 'secret' }] };
    const message = problems({ ...valid, endpoint: { ...valid.endpoint, auth } });
    expect(message).toContain('$.endpoint.auth.settings.0');
    expect(message).not.toContain('secret');
  });

  it('refuses step combinations Dataverse would refuse, naming the step', () => {
    const step = (overrides: Record<string, unknown>) => problems({ ...valid, steps: [{ table: 'account', message: 'Update', ...overrides }] });
    expect(step({ mode: 'Asynchronous', stage: 'PreOperation' })).toContain('$.steps.0.stage: an asynchronous step must be in the PostOperation stage');
    expect(step({ mode: 'Synchronous', asyncAutoDelete: true })).toContain('asyncAutoDelete applies to asynchronous steps only');
    expect(step({ message: 'Create', filteringAttributes: ['name'] })).toContain('filteringAttributes apply to the Update message only');
    expect(step({ message: 'Create', images: [{ type: 'PreImage', alias: 'pre' }] })).toContain('a Create step has no pre-image');
    expect(step({ message: 'Delete', images: [{ type: 'Both', alias: 'both' }] })).toContain('a Delete step has no post-image');
    expect(step({ mode: 'Synchronous', stage: 'PreOperation', images: [{ type: 'PostImage', alias: 'post' }] })).toContain('a post-image needs the PostOperation stage');
    expect(step({ images: [{ type: 'PreImage', alias: 'a' }, { type: 'PostImage', alias: 'a' }] })).toContain('two images use the alias "a"');
    expect(step({ table: 'Account' })).toContain('$.steps.0.table: must be a logical name');
    expect(step({ stage: 'PostOp' })).toContain('$.steps.0.stage');
    expect(step({ colour: 'red' })).toContain('colour');
  });

  it('refuses two steps with the same name, since steps are matched by name', () => {
    const twice = { ...valid, steps: [valid.steps[0], { table: 'account', message: 'Update' }] };
    expect(problems(twice)).toContain('two steps are named "hook: Update of account"');
  });

  it('says when the file is not JSON', () => {
    expect(() => parseRegistration('{', 'registration/webhook.json')).toThrow('registration/webhook.json is not valid JSON');
  });
});
