import { create } from "@bufbuild/protobuf";
import { CmdType, HeaderTypeSchema, type HeaderType } from "../../gen/scripwire/v1/types_pb.js";
import { refusal, type Reason } from "./refusal.js";

export const PROTOCOL_VERSION = "scripwire/1";
/** Retransmissions beyond this are refused: a wallet looping on pCount is broken, not unlucky. */
export const P_COUNT_MAX = 64;

export function header(cmdType: CmdType, nowMs: number, errorMessage = "", errorReason: Reason | "" = ""): HeaderType {
  return create(HeaderTypeSchema, {
    cmdType,
    protocolVersion: PROTOCOL_VERSION,
    serverDateUnixMs: BigInt(nowMs),
    errorMessage,
    errorReason,
  });
}

/** The cmdType code as the patent writes it ("GM4_1"), used in domain tags. */
export function cmdCode(c: CmdType): string {
  const name = CmdType[c];
  if (!name || c === CmdType.UNSPECIFIED) throw new RangeError(`unknown cmdType ${c}`);
  return name;
}

/**
 * Every request header names the protocol version it speaks. Only
 * "scripwire/1" exists; an empty or other version is refused rather than
 * guessed at, so a future incompatible version can never be misread as this one.
 */
export function checkProtocolVersion(h: HeaderType): void {
  if (h.protocolVersion !== PROTOCOL_VERSION) {
    throw refusal(
      "UNSUPPORTED_PROTOCOL_VERSION",
      `header.protocol_version must be "${PROTOCOL_VERSION}"; got ${h.protocolVersion ? JSON.stringify(h.protocolVersion) : "none"}`,
    );
  }
}
