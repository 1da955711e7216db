import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { webhookUrl } from '../../src/functionNames';
import { parseRegistration, webhookUrlProblem } from '../../src/registration/definition';

const valid = { endpoint: { name: 'hook', url: webhookUrl('https://func.azurewebsites.net'), auth: { type: 'WebhookKey' } } };

function problems(registration: unknown): string {
  try {
    parseRegistration(JSON.stringify(registration), 'webhook.json');
    return '';
  } catch (error) {
    return String(error);
  }
}

describe('the registration file', () => {
  it('holds the endpoint only', () => {
    expect(parseRegistration(JSON.stringify(valid), 'webhook.json')).toEqual(valid);
  });

  it('the repository’s own file is valid, and names no URL (it differs per environment)', () => {
    const file = path.resolve(__dirname, '..', '..', 'registration', 'webhook.json');
    const registration = parseRegistration(readFileSync(file, 'utf8'), file);
    expect(registration.endpoint).toMatchObject({ name: 'dataverse-webhooks', auth: { type: 'WebhookKey' } });
    expect(registration.endpoint.url).toBeUndefined();
  });

  it('refuses the steps it used to list: the handlers declare them now', () => {
    const message = problems({ ...valid, steps: [{ table: 'account', message: 'Update' }] });
    expect(message).toContain(
      'webhook.json lists steps: steps are now declared by the handlers (on(…) in src/handlers/, see "register --plan")',
    );
  });

  it('refuses a URL that is not https, or that carries the key or a password, without repeating it', () => {
    const url = (text: string) => problems({ endpoint: { ...valid.endpoint, url: text } });
    expect(url('http://func.azurewebsites.net/api/x')).toContain('$.endpoint.url: must be an https URL');
    expect(url('https://func.azurewebsites.net/api/x?code=abc')).toContain('must not carry ?code=');
    expect(url('https://func.azurewebsites.net/api/x?Code=abc')).toContain('must not carry ?code=');
    expect(url('https://user:hunter2@func.azurewebsites.net/api/x')).toContain('must not carry a user name or password');
    for (const text of ['https://func.azurewebsites.net/api/x?code=abc', 'https://user:hunter2@func.azurewebsites.net/api/x']) {
      expect(url(text)).not.toMatch(/abc|hunter2/);
    }
    expect(webhookUrlProblem('not a url')).toBe('is not a URL');
    expect(webhookUrlProblem(valid.endpoint.url)).toBeNull();
  });

  it('refuses a secret written into the file instead of an environment variable name', () => {
    const auth = { type: 'HttpHeader', settings: [{ name: 'x-key', value: 'secret' }] };
    const message = problems({ endpoint: { ...valid.endpoint, auth } });
    expect(message).toContain('$.endpoint.auth.settings[0]');
    expect(message).not.toContain('secret');
  });

  it('says when the file is not JSON', () => {
    expect(() => parseRegistration('{', 'registration/webhook.json')).toThrow('registration/webhook.json is not valid JSON');
  });
});
