// Module resolve hook for test/core-no-transport.test.ts: any import of a
// transport (Connect, gRPC, Node's HTTP servers and sockets) throws, so a
// protocol core module that pulls one in, however indirectly, fails to load.
const FORBIDDEN = [/^@connectrpc\//, /^@grpc\//, /^(node:)?https?$/, /^(node:)?http2$/, /^(node:)?net$/, /^(node:)?tls$/, /^pg$/, /^better-sqlite3$/];
export async function resolve(specifier, context, next) {
  if (FORBIDDEN.some((r) => r.test(specifier))) {
    throw new Error(`transport import "${specifier}" from ${context.parentURL ?? "?"}`);
  }
  return next(specifier, context);
}
