/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) served from the
 * protobuf-es descriptors compiled into `gen/`. Connect-node ships no
 * reflection package; this is the small bidi-stream handler it needs.
 *
 * With it, `buf curl --list-methods`, `grpcurl` and Postman discover the
 * Scripwire API without a copy of the protos.
 *
 * Every answer that carries files (file_by_filename, file_containing_symbol,
 * file_containing_extension) sends the requested file first, then its
 * transitive imports, each as a serialized `google.protobuf.FileDescriptorProto`.
 * Answers are stateless (files already sent on the stream are sent again):
 * the spec allows skipping them, but resending is always correct and the
 * files are small.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescExtension, DescFile, DescMessage, DescService, DescEnum } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The two reflection services; list them among the served services. */
export const reflectionServices: readonly DescService[] = [
  v1.ServerReflection,
  v1alpha.ServerReflection,
];

/**
 * Requests answered on one reflection stream before the server ends it.
 * Real clients send a handful; the cap bounds a misbehaving one.
 */
export const REFLECTION_REQUESTS_PER_STREAM_MAX = 10_000;

export interface ReflectionOptions {
  /**
   * Services listed by `list_services` (in this order, duplicates dropped).
   * Their files and those files' imports are what reflection can describe.
   */
  services: readonly DescService[];
  /**
   * Extra files to make resolvable, e.g. files that only declare extensions.
   * Default: none.
   */
  files?: readonly DescFile[];
}

/** Lookup tables built once at start-up; every answer is a map lookup. */
export interface ReflectionIndex {
  /** Fully-qualified names of the listed services. */
  readonly serviceNames: readonly string[];
  /** A file by its path, e.g. `scripwire/v1/center.proto`. */
  fileByName(name: string): DescFile | undefined;
  /** The file declaring a service, method, message, field, enum, enum value or extension. */
  fileContainingSymbol(symbol: string): DescFile | undefined;
  /** The file declaring extension `number` of message `containingType`. */
  fileContainingExtension(containingType: string, number: number): DescFile | undefined;
  /** Extension numbers of a known message type (possibly none), or undefined if the type is unknown. */
  extensionNumbers(messageType: string): readonly number[] | undefined;
  /** `file` then its transitive imports, each a serialized FileDescriptorProto. */
  encodeWithDependencies(file: DescFile): Uint8Array[];
}

/** Build the lookup tables for `options`. */
export function createReflectionIndex(options: ReflectionOptions): ReflectionIndex {
  const serviceNames: string[] = [];
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messageTypes = new Set<string>();
  // containing type → extension number → declaring file
  const extensions = new Map<string, Map<number, DescFile>>();
  const encoded = new Map<DescFile, Uint8Array>();

  const addExtension = (file: DescFile, ext: DescExtension) => {
    symbols.set(ext.typeName, file);
    let byNumber = extensions.get(ext.extendee.typeName);
    if (byNumber === undefined) {
      byNumber = new Map();
      extensions.set(ext.extendee.typeName, byNumber);
    }
    byNumber.set(ext.number, file);
  };
  const addEnum = (file: DescFile, e: DescEnum) => {
    symbols.set(e.typeName, file);
    // Enum values live in the scope enclosing the enum (C++ scoping rules).
    const dot = e.typeName.lastIndexOf(".");
    const scope = dot < 0 ? "" : e.typeName.slice(0, dot + 1);
    for (const v of e.values) {
      symbols.set(scope + v.name, file);
    }
  };
  const addMessage = (file: DescFile, m: DescMessage) => {
    symbols.set(m.typeName, file);
    messageTypes.add(m.typeName);
    for (const f of m.fields) {
      symbols.set(`${m.typeName}.${f.name}`, file);
    }
    for (const o of m.oneofs) {
      symbols.set(`${m.typeName}.${o.name}`, file);
    }
    for (const n of m.nestedMessages) addMessage(file, n);
    for (const e of m.nestedEnums) addEnum(file, e);
    for (const x of m.nestedExtensions) addExtension(file, x);
  };
  const addFile = (file: DescFile) => {
    const name = file.proto.name;
    if (files.has(name)) {
      return;
    }
    files.set(name, file);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) {
        symbols.set(`${s.typeName}.${m.name}`, file);
      }
    }
    for (const m of file.messages) addMessage(file, m);
    for (const e of file.enums) addEnum(file, e);
    for (const x of file.extensions) addExtension(file, x);
    for (const d of file.dependencies) addFile(d);
  };

  for (const s of options.services) {
    if (!serviceNames.includes(s.typeName)) {
      serviceNames.push(s.typeName);
    }
    addFile(s.file);
  }
  for (const f of options.files ?? []) {
    addFile(f);
  }

  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  return {
    serviceNames,
    fileByName: (name) => files.get(name),
    fileContainingSymbol: (symbol) => symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol),
    fileContainingExtension: (type, number) => extensions.get(type)?.get(number),
    extensionNumbers(type) {
      if (!messageTypes.has(type)) {
        return undefined;
      }
      return [...(extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
    },
    encodeWithDependencies(file) {
      const out: Uint8Array[] = [];
      const seen = new Set<DescFile>();
      const queue: DescFile[] = [file];
      while (queue.length > 0) {
        const f = queue.shift()!;
        if (seen.has(f)) continue;
        seen.add(f);
        out.push(encode(f));
        queue.push(...f.dependencies);
      }
      return out;
    },
  };
}

/** A reflection request, structurally common to v1 and v1alpha. */
export interface ReflectionRequestLike {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

/** The `message_response` oneof of a reflection response, common to v1 and v1alpha. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

const notFound = (errorMessage: string): ReflectionAnswer => ({
  case: "errorResponse",
  value: { errorCode: Code.NotFound, errorMessage },
});

/**
 * Answer one reflection request. Pure: unknown names give a NOT_FOUND
 * `error_response` on the stream, as gRPC's own servers do; the stream stays
 * open.
 */
export function answerReflection(index: ReflectionIndex, req: ReflectionRequestLike): ReflectionAnswer {
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.serviceNames.map((name) => ({ name })) },
      };
    case "fileByFilename": {
      const file = index.fileByName(r.value);
      return file === undefined
        ? notFound(`file "${r.value}" not found`)
        : { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.encodeWithDependencies(file) } };
    }
    case "fileContainingSymbol": {
      const file = index.fileContainingSymbol(r.value);
      return file === undefined
        ? notFound(`symbol "${r.value}" not found`)
        : { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.encodeWithDependencies(file) } };
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      const file = index.fileContainingExtension(containingType, extensionNumber);
      return file === undefined
        ? notFound(`extension ${extensionNumber} of "${containingType}" not found`)
        : { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.encodeWithDependencies(file) } };
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(r.value);
      return numbers === undefined
        ? notFound(`message type "${r.value}" not found`)
        : { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: [...numbers] } };
    }
    default:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "message_request is not set" },
      };
  }
}

/**
 * Register `grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection` on `router`.
 */
export function registerReflection(router: ConnectRouter, index: ReflectionIndex): void {
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      let n = 0;
      for await (const req of requests) {
        if (++n > REFLECTION_REQUESTS_PER_STREAM_MAX) return;
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answerReflection(index, req),
        });
      }
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      let n = 0;
      for await (const req of requests) {
        if (++n > REFLECTION_REQUESTS_PER_STREAM_MAX) return;
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answerReflection(index, req),
        });
      }
    },
  });
}
