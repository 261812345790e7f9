/**
 * A deliberately low-level customer for protocol tests: every patent message
 * is one method, nothing is retried or persisted, and any field can be
 * tampered with before sending. The real wallet lives in src/wallet.
 */
import { clone, create } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, HeaderTypeSchema, ScripTypeSchema, type Offer, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { computeMessageHash, verifyMessageHash } from "../../src/crypto/scrip-auth.js";
import { decryptCustomSecret, sealSessionKey } from "../../src/crypto/registration.js";

export const hdr = (cmdType: CmdType) => create(HeaderTypeSchema, { cmdType, protocolVersion: "scripwire/1" });

export class RawCustomer {
  center: Client<typeof PaymentCenterService>;
  seller: Client<typeof SellerService> | undefined;
  walletId = `w_${randomBytes(12).toString("hex")}`;
  customSecret: Uint8Array = new Uint8Array(32);
  scrip!: ScripType;

  constructor(centerTransport: Transport, sellerTransport?: Transport) {
    this.center = createClient(PaymentCenterService, centerTransport);
    this.seller = sellerTransport ? createClient(SellerService, sellerTransport) : undefined;
  }

  get customId() {
    return this.scrip.scrip!.customId!;
  }

  get value(): bigint {
    return this.scrip.scrip!.value;
  }

  async register(currency = ""): Promise<void> {
    const info = await this.center.getCenterInfo({});
    const ks = new Uint8Array(randomBytes(32));
    const r2 = await this.center.register({
      header: hdr(CmdType.UM1),
      walletId: this.walletId,
      name: "Test Customer",
      email: "t@example.test",
      sealedSessionKey: sealSessionKey(info.publicKey, this.walletId, ks),
      currency,
    });
    this.scrip = r2.scrip!;
    this.customSecret = decryptCustomSecret(ks, this.walletId, this.customId, r2.encryptedCustomSecret);
  }

  hash(cmd: CmdType, contextId: string, pCount: number, scrip: ScripType, order?: Offer, secret = this.customSecret): Uint8Array {
    return computeMessageHash(scrip.hashAlgorithm, secret, { code: CmdType[cmd], contextId, pCount, scrip, order });
  }

  verify(cmd: CmdType, contextId: string, pCount: number, scrip: ScripType, hash: Uint8Array, order?: Offer): boolean {
    return verifyMessageHash(scrip.hashAlgorithm, this.customSecret, { code: CmdType[cmd], contextId, pCount, scrip, order }, hash);
  }

  /** M1 -> M2. */
  m1(item: string, value: string) {
    return this.seller!.requestIssue({ header: hdr(CmdType.GM1_1), item, value, customId: this.customId });
  }

  /** M3. */
  m3(permit: Offer) {
    return this.center.initIssue({ header: hdr(CmdType.GM3_1), permit });
  }

  /** M4 (GM4_1 or GM4_2) with this customer's current scrip unless another is given. */
  m4(tranId: string, o: { cmd?: CmdType; pCount?: number; scrip?: ScripType; secret?: Uint8Array } = {}) {
    const cmd = o.cmd ?? CmdType.GM4_1;
    const pCount = o.pCount ?? 0;
    const scrip = o.scrip ?? this.scrip;
    return this.center.issue({ header: hdr(cmd), tranId, scrip, scripHash: this.hash(cmd, tranId, pCount, scrip, undefined, o.secret), pCount });
  }

  /** M6 (GM6_1 / GM6_2 / GM6_3). */
  m6(tranId: string, newScrip: ScripType, cmd = CmdType.GM6_1, pCount = 0) {
    return this.center.confirmIssue({ header: hdr(cmd), tranId, newScrip, newScripHash: this.hash(cmd, tranId, pCount, newScrip), pCount });
  }

  /** S1 -> S2. */
  s1(requestUrl: string, pMethod = DeliveryMethod.VIEW) {
    return this.seller!.requestService({ header: hdr(CmdType.PM1_1), requestUrl, pMethod, customId: this.customId });
  }

  s3(order: Offer) {
    return this.center.initPayment({ header: hdr(CmdType.PM3_1), order });
  }

  s4(order: Offer, o: { cmd?: CmdType; pCount?: number; scrip?: ScripType; secret?: Uint8Array } = {}) {
    const cmd = o.cmd ?? CmdType.PM4_1;
    const pCount = o.pCount ?? 0;
    const scrip = o.scrip ?? this.scrip;
    return this.center.pay({ header: hdr(cmd), scrip, order, hash: this.hash(cmd, order.tranId, pCount, scrip, order, o.secret), pCount });
  }

  s6(tranId: string, newScrip: ScripType, cmd = CmdType.PM6_1, pCount = 0) {
    return this.center.confirmPayment({ header: hdr(cmd), tranId, newScrip, newScripHash: this.hash(cmd, tranId, pCount, newScrip), pCount });
  }

  /** Full issuance M1..M7 that adopts the new scrip. */
  async earn(item: string, answer: string): Promise<ScripType> {
    const m2 = await this.m1(item, answer);
    if (m2.header?.cmdType !== CmdType.GM2_1) throw new Error(`M2 refused: ${m2.header?.errorMessage}`);
    await this.m3(m2.permit!);
    const m5 = await this.m4(m2.permit!.tranId);
    if (m5.header?.cmdType !== CmdType.GM5_1) throw new Error(`M5 ${CmdType[m5.header!.cmdType]}: ${m5.header?.errorMessage}`);
    const m7 = await this.m6(m2.permit!.tranId, m5.newScrip!);
    this.scrip = m5.newScrip!;
    return m7.scrip!;
  }

  /** Full payment S1..S6 that adopts the change; returns the receipt. */
  async buy(url: string, method = DeliveryMethod.VIEW) {
    const s2 = await this.s1(url, method);
    if (s2.header?.cmdType !== CmdType.PM2_1) throw new Error(`S2 refused: ${s2.header?.errorMessage}`);
    await this.s3(s2.order!);
    const s5 = await this.s4(s2.order!);
    if (s5.header?.cmdType !== CmdType.PM5_1) throw new Error(`S5 ${CmdType[s5.header!.cmdType]}: ${s5.header?.errorMessage}`);
    const done = await this.s6(s2.order!.tranId, s5.newScrip!);
    this.scrip = s5.newScrip!;
    return done.receipt!;
  }
}

/** A copy of a scrip with its body changed: what a cheating wallet would send. */
export function tamper(s: ScripType, f: (s: ScripType) => void): ScripType {
  const c = clone(ScripTypeSchema, s);
  f(c);
  return c;
}
