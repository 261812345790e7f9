/**
 * Section 5: the wallet's side. What it costs a wallet to check a scrip it
 * received (the reply hash under its Custom_Secret), its whole per-payment
 * cryptography, and how many bytes each patent message takes on the wire
 * (protobuf binary, as captured from one real register/earn/buy flow).
 */
import { HashAlgorithm } from "../gen/scripwire/v1/types_pb.js";
import { computeMessageHash, verifyMessageHash } from "../src/crypto/scrip-auth.js";
import { microGroup, type MicroOptions } from "./lib/stats.js";
import type { World } from "./world.js";

export interface WalletReport {
  verifyReceivedScripUs: number;
  walletCryptoPerPaymentUs: number;
  sizes: Array<{ step: string; type: string; bytes: number }>;
  /** Bytes the center receives and sends for one payment (S3+S4+S6 requests and replies), protobuf only. */
  paymentBytes: { toCenter: number; fromCenter: number };
}

export function runWallet(w: World, opts: MicroOptions, onStep: (m: string) => void): WalletReport {
  const p = w.flow.pay;
  const alg = HashAlgorithm.HMAC_SHA256;
  const tranId = p.order.tranId;
  onStep("wallet: verify a received scrip; all wallet crypto for one payment");
  const verifyFn = () => {
    if (!verifyMessageHash(alg, p.customSecret, { code: "PM5_1", contextId: tranId, pCount: 0, scrip: p.newScrip }, p.newScripHash)) throw new Error("S5 hash");
  };
  // S4 request hash, S5 reply check, S6 request hash, PM7_1 reply check: 4 MACs.
  const allFn = () => {
    computeMessageHash(alg, p.customSecret, { code: "PM4_1", contextId: tranId, pCount: 0, scrip: p.scrip, order: p.order });
    verifyMessageHash(alg, p.customSecret, { code: "PM5_1", contextId: tranId, pCount: 0, scrip: p.newScrip }, p.newScripHash);
    computeMessageHash(alg, p.customSecret, { code: "PM6_1", contextId: tranId, pCount: 0, scrip: p.newScrip });
    return verifyMessageHash(alg, p.customSecret, { code: "PM7_1", contextId: tranId, pCount: 1, scrip: p.newScrip }, p.confirmScripHash);
  };
  const [verify, all] = microGroup([verifyFn, allFn], opts);
  const sizes = w.flow.messages.map((m) => ({ step: m.step, type: m.type, bytes: m.bytes.length }));
  const size = (step: string) => sizes.find((s) => s.step === step)?.bytes ?? 0;
  return {
    verifyReceivedScripUs: verify!.us,
    walletCryptoPerPaymentUs: all!.us,
    sizes,
    paymentBytes: { toCenter: size("S3") + size("S4") + size("S6"), fromCenter: size("S3 reply") + size("S5") + size("S6 reply (receipt)") },
  };
}
