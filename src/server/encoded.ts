/**
 * The wire bytes a protobuf message was decoded from, or will be encoded to,
 * remembered beside it: when a message only passes through (the center's hot
 * calls go to the ledger's thread as bytes, and their answers come back as
 * bytes), the fast path re-uses them instead of encoding the same message
 * again. A WeakMap, so the bytes live exactly as long as the message.
 *
 * Only for messages nobody mutates after decoding; every user in this
 * project treats requests and replies as read-only.
 */
const encodings = new WeakMap<object, Uint8Array>();

export function rememberEncoding(message: object, bytes: Uint8Array): void {
  encodings.set(message, bytes);
}

export function encodingOf(message: object): Uint8Array | undefined {
  return encodings.get(message);
}
