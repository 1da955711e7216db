export { parseDataContractDate } from './dates';
export { type ParseIssue, WebhookParseError, type WebhookParseErrorKind } from './errors';
export { DATAVERSE_HEADER_NAMES, type HeaderSource, MSG_SIZE_EXCEEDED_HEADER, readDataverseHeaders } from './headers';
export * from './model';
export { type ParseResult, parseDataverseWebhook, parseDataverseWebhookOrThrow, type WebhookRequest } from './parseWebhook';
