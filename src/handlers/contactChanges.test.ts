import { beforeEach, describe, expect, it } from 'vitest';
import { generatedEvent, runHandler, sampleEvent, testKit } from '../handlerApi/testing';
import { type ContactChangeSummary, contactChangeSink, contactChanges } from './contactChanges';

describe('contact-changes', () => {
  const published: ContactChangeSummary[] = [];
  beforeEach(() => {
    published.length = 0;
    contactChangeSink.publish = async (summary) => void published.push(summary);
  });

  it('reports each followed column an Update changed, from its pre-image "pre" to the new value', async () => {
    const event = generatedEvent({
      entity: 'contact',
      message: 'Update',
      ids: ['6d81597f-0f9f-e711-8122-000d3aa2331c'],
      attributes: ['firstname=James', 'lastname=Glynn-Smith', 'parentcustomerid:lookup=account/4ef5b371-e89e-e711-8122-000d3aa2331c'],
      preImages: ['pre:firstname=James', 'pre:lastname=Glynn', 'pre:parentcustomerid:null='],
    });
    const run = await runHandler(contactChanges, event);
    expect(run.calls).toEqual([expect.objectContaining({ error: null })]);
    expect(published).toEqual([
      {
        contactId: '6d81597f-0f9f-e711-8122-000d3aa2331c',
        changed: [
          { attribute: 'lastname', from: 'Glynn', to: 'Glynn-Smith' },
          { attribute: 'parentcustomerid', from: '(empty)', to: 'account:4ef5b371-e89e-e711-8122-000d3aa2331c' },
        ],
      },
    ]);
    // Column names in the log, never their values.
    expect(run.log).toEqual([
      expect.objectContaining({
        message: 'Contact changed',
        properties: expect.objectContaining({ columns: 'lastname,parentcustomerid' }),
      }),
    ]);
  });

  it('without its pre-image (the docs sample, a step registered by hand) reports the new values', async () => {
    await runHandler(contactChanges, sampleEvent('samples/05-contact-update-async-postop-docs-sample.json'));
    expect(published).toEqual([
      {
        contactId: '6d81597f-0f9f-e711-8122-000d3aa2331c',
        changed: [{ attribute: 'firstname', from: '(not in the pre-image)', to: 'James' }],
      },
    ]);
  });

  it('is not called for an Update of columns it does not follow, nor twice for one delivery', async () => {
    expect(
      (await runHandler(contactChanges, generatedEvent({ entity: 'contact', message: 'Update', attributes: ['jobtitle=CEO'] }))).matched,
    ).toBe(false);
    const kit = testKit();
    const event = generatedEvent({
      entity: 'contact',
      message: 'Update',
      attributes: ['lastname=Glynn'],
      preImages: ['pre:lastname=Glyn'],
    });
    expect((await kit.run(contactChanges, event)).calls).toHaveLength(1);
    expect(await kit.run(contactChanges, event)).toMatchObject({ calls: [], duplicates: 1 });
    expect(published).toHaveLength(1);
  });
});
