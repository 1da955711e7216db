import { type AttributeChange, type DataverseValue, isEntityReference, on } from '../handlerApi';

/**
 * Example: react to what an Update changed, from the pre-image to the new values. The declaration
 * below is the whole registration: `register` gives Dataverse an asynchronous PostOperation step on
 * contact Update, filtered on the followed columns, with a pre-image "pre" of those columns.
 * `skipStale` makes an older update arriving late (asynchronous steps are not ordered) a no-op.
 */
export const FOLLOWED_CONTACT_COLUMNS = ['firstname', 'lastname', 'emailaddress1', 'parentcustomerid'] as const;

export interface ContactChangeSummary {
  contactId: string;
  changed: Array<{ attribute: string; from: string; to: string }>;
}

/** The followed columns an Update changed, each as text (lookups by their id). */
export function summarizeContactChanges(contactId: string, changes: AttributeChange[]): ContactChangeSummary {
  const followed = new Set<string>(FOLLOWED_CONTACT_COLUMNS);
  return {
    contactId,
    changed: changes
      .filter((change) => followed.has(change.attribute))
      .map((change) => ({ attribute: change.attribute, from: asText(change.from), to: asText(change.to) })),
  };
}

function asText(value: DataverseValue | undefined): string {
  if (value === undefined) return '(not in the pre-image)';
  if (value === null) return '(empty)';
  if (isEntityReference(value)) return `${value.logicalName}:${value.id}`;
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Where the example sends its summaries; replace with your own effect (an API call, a table write…). */
export const contactChangeSink: { publish: (summary: ContactChangeSummary) => Promise<void> } = {
  publish: async () => undefined,
};

export const contactChanges = on(
  {
    name: 'contact-changes',
    entity: 'contact',
    message: 'Update',
    stage: 'PostOperation',
    mode: 'Asynchronous',
    filteringAttributes: FOLLOWED_CONTACT_COLUMNS,
    images: { pre: { type: 'PreImage', columns: FOLLOWED_CONTACT_COLUMNS } },
    skipStale: true,
  },
  async (event, ctx) => {
    const summary = summarizeContactChanges(event.primaryEntityId, ctx.changes('pre'));
    if (summary.changed.length === 0) return;
    await contactChangeSink.publish(summary);
    // Column names only: their values are customer data.
    ctx.log.info('Contact changed', { contactId: summary.contactId, columns: summary.changed.map((change) => change.attribute).join(',') });
  },
);
