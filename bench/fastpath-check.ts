/**
 * Checks that the PROTOTYPE unary fast path (bench/lib/fastpath.ts) answers
 * exactly like the project stack for the project's own client transports:
 * Connect, gRPC and gRPC-Web; a success, a protocol refusal, an
 * UNAUTHENTICATED call and a malformed call, with the same codes, messages
 * and `scripwire-error-reason` metadata.
 *
 *   node --import=tsx bench/fastpath-check.ts
 */
import { createClient, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../src/client/transport.js";
import { computeMessageHash } from "../src/crypto/scrip-auth.js";
import { errorReason } from "../src/server/errors.js";
import { Seller } from "../src/seller/seller.js";
import { ServerChild } from "./lib/child.js";
import { buildWorld, cloneWallets, copyTemplate, fetchOffers, hdr } from "./world.js";

const dir = mkdtempSync(join(tmpdir(), "scripwire-fastpath-check-"));
const protocols = ["connect", "grpc", "grpc-web"] as const;
const seen: Record<string, string[]> = {};
try {
  const w = await buildWorld({ dir, wallets: 1 + protocols.length, adItems: 2 });
  const seller = new Seller(w.sellerConfig);
  for (const mode of ["stack-center", "fast-center"] as const) {
    const child = await ServerChild.start({ mode, dbPath: copyTemplate(w, join(dir, mode)) });
    try {
      for (const [i, protocol] of protocols.entries()) {
        const c = createClient(PaymentCenterService, createTransport(child.url, { protocol }));
        const [x] = cloneWallets([w.wallets[i + 1]!]);
        const order = fetchOffers(seller, x!, 1)[0]!;
        const out: string[] = [];
        const s3 = await c.initPayment({ header: hdr(CmdType.PM3_1), order });
        out.push(`S3 ${s3.tranId === order.tranId}`);
        for (const bad of [
          () => c.pay({ header: hdr(CmdType.PM4_1), scrip: x!.scrip, order, hash: new Uint8Array(32), pCount: 0 }),
          () => c.initPayment({ header: hdr(CmdType.PM1_1), order }),
        ]) {
          try {
            await bad();
            out.push("no error");
          } catch (e) {
            const ce = ConnectError.from(e);
            out.push(`${ce.code}/${errorReason(ce)}/${ce.rawMessage}`);
          }
        }
        const hash = computeMessageHash(x!.scrip.hashAlgorithm, x!.customSecret, { code: "PM4_1", contextId: order.tranId, pCount: 0, scrip: x!.scrip, order });
        const s5 = await c.pay({ header: hdr(CmdType.PM4_1), scrip: x!.scrip, order, hash, pCount: 0 });
        out.push(`S5 ${CmdType[s5.header!.cmdType]}`);
        const refused = await c.pay({ header: hdr(CmdType.PM4_1), scrip: x!.scrip, order: fetchOffers(seller, x!, 1)[0]!, hash, pCount: 0 }).catch((e: unknown) => ConnectError.from(e));
        out.push(refused instanceof ConnectError ? `${refused.code}/${errorReason(refused)}` : `S5 ${CmdType[refused.header!.cmdType]}`);
        seen[`${mode} ${protocol}`] = out;
        process.stdout.write(`${mode.padEnd(13)} ${protocol.padEnd(9)} ${out.join(" | ")}\n`);
      }
    } finally {
      await child.close();
    }
  }
  let same = true;
  for (const p of protocols) {
    const a = JSON.stringify(seen[`stack-center ${p}`]);
    const b = JSON.stringify(seen[`fast-center ${p}`]);
    if (a !== b) {
      same = false;
      process.stdout.write(`DIFFERENT over ${p}:\n  stack ${a}\n  fast  ${b}\n`);
    }
  }
  process.stdout.write(same ? "fast path answers exactly like the stack\n" : "fast path differs from the stack\n");
  process.exitCode = same ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
