export * from './model';
export { parseDataContractDate } from './dates';
export { WebhookParseError, type ParseIssue, type WebhookParseErrorKind } from './errors';
export { DATAVERSE_HEADER_NAMES, MSG_SIZE_EXCEEDED_HEADER, readDataverseHeaders, type HeaderSource } from './headers';
export { parseDataverseWebhook, parseDataverseWebhookOrThrow, type ParseResult, type WebhookRequest } from './parseWebhook';
