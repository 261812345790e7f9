/**
 * Connect adapters for the payment center: thin wrappers that hand each
 * request to PaymentCenter and map ledger/admin failures to status codes.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { CenterAdminService, KeyKind, type Campaign } from "../../gen/scripwire/v1/admin_pb.js";
import { GetCheckpointResponseSchema, PaymentCenterService, WatchSettlementsResponseSchema, type WatchSettlementsRequest } from "../../gen/scripwire/v1/center_pb.js";
import { toCheckpointMessage } from "./sealing.js";
import { PayoutSchema } from "../../gen/scripwire/v1/types_pb.js";
import type { CampaignRecord } from "../ledger/ledger.js";
import { AdminGuard } from "../server/admin-guard.js";
import { alreadyExists, invalidArgument, mapErrors, mapServiceErrors, notFound, toConnectError } from "../server/errors.js";
import type { Logger } from "../server/log.js";
import { REMOTE_ADDRESS } from "../server/limits.js";
import { SettlementWatchGate } from "./settlement-watch.js";
import { toSettlement, type PaymentCenter } from "./center.js";
import { RefundService } from "./refund.js";
import { SyncService, type SyncOptions } from "./restore.js";

/** Settlement streams poll this often as well as waking on local confirmations, so confirmations on other replicas arrive too. */
export const SETTLEMENT_POLL_MS = 1_000;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export interface PaymentCenterServiceOptions {
  /** Restore/sync rate limits (on by default, see restore.ts). */
  sync?: SyncOptions;
}

export function paymentCenterService(center: PaymentCenter, opts: PaymentCenterServiceOptions = {}): ServiceImpl<typeof PaymentCenterService> {
  const syncs = new SyncService(center, opts.sync);
  const refunds = new RefundService(center);
  const watches = new SettlementWatchGate(center.ledger);
  return {
    sync: (req, ctx: HandlerContext) => mapErrors(() => syncs.sync(req, ctx.values.get(REMOTE_ADDRESS))),
    refundPayment: (req) => mapErrors(() => refunds.refundBySeller(req)),
    getCenterInfo: () => center.info(),
    register: (req) => mapErrors(() => center.register(req)),
    initIssue: (req) => mapErrors(() => center.initIssue(req)),
    issue: (req) => mapErrors(() => center.issue(req)),
    confirmIssue: (req) => mapErrors(() => center.confirmIssue(req)),
    initPayment: (req) => mapErrors(() => center.initPayment(req)),
    pay: (req) => mapErrors(() => center.pay(req)),
    confirmPayment: (req) => mapErrors(() => center.confirmPayment(req)),
    renew: (req) => mapErrors(() => center.renew(req)),
    redeem: (req) => mapErrors(() => center.redeem(req)),
    listSettlements: (req) =>
      mapErrors(async () => {
        const r = await center.listSettlements(req);
        // The journal's latest checkpoint rides along, for the seller to keep.
        r.checkpoint = toCheckpointMessage(await center.ledger.latestCheckpoint());
        return r;
      }),
    getCheckpoint: async () => create(GetCheckpointResponseSchema, { checkpoint: toCheckpointMessage(await center.ledger.latestCheckpoint()) }),
    async *watchSettlements(req, ctx: HandlerContext) {
      await mapErrors(() => center.authenticateVendor(req.vendorId, req.afterSequence, req.timestampUnixMs, req.vendorKeyId, req.mac));
      // Single-use, and a bounded number per vendor and per address (settlement-watch.ts).
      const release = await watches.enter(req.vendorId, req.mac, ctx.values.get(REMOTE_ADDRESS));
      try {
        yield* watchLoop(req, ctx);
      } finally {
        release();
      }
    },
  };

  async function* watchLoop(req: WatchSettlementsRequest, ctx: HandlerContext) {
      let cursor = req.afterSequence;
      let checkpointSize = -1n;
      while (!ctx.signal.aborted) {
        const rows = await center.ledger.listSettlements(req.vendorId, cursor, 100);
        for (const r of rows) {
          cursor = r.sequence;
          yield create(WatchSettlementsResponseSchema, { settlement: toSettlement(r) });
        }
        if (rows.length === 100) continue;
        // Then the newest checkpoint, when it moved: the seller can keep every one.
        const cp = req.includeCheckpoints ? await center.ledger.latestCheckpoint() : undefined;
        if (cp && cp.size > checkpointSize) {
          checkpointSize = cp.size;
          yield create(WatchSettlementsResponseSchema, { checkpoint: toCheckpointMessage(cp) });
        }
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            center.events.off("settlement", onSettle);
            ctx.signal.removeEventListener("abort", done);
            resolve();
          };
          const onSettle = (vendorId: string) => {
            if (vendorId === req.vendorId) done();
          };
          const timer = setTimeout(done, SETTLEMENT_POLL_MS);
          center.events.on("settlement", onSettle);
          ctx.signal.addEventListener("abort", done);
        });
      }
  }
}

function toCampaign(c: CampaignRecord): Campaign {
  return { $typeName: "scripwire.v1.Campaign", ...c } as Campaign;
}

/** Ledger refusals of admin operations (UNKNOWN_VENDOR, CAMPAIGN_EXISTS ...) through the one mapping. */
function mapLedgerError(e: unknown): never {
  throw toConnectError(e);
}

/**
 * The admin service. `admin` is the token (checked for strength here) or an
 * {@link AdminGuard} already built with one; either way wrong tokens back off
 * per address and every admin call is logged with its peer address.
 */
export function centerAdminService(center: PaymentCenter, admin: string | AdminGuard, logger?: Logger): ServiceImpl<typeof CenterAdminService> {
  const guard = typeof admin === "string" ? new AdminGuard({ token: admin, logger }) : admin;
  const requireAdmin = (ctx: HandlerContext) => guard.check(ctx);
  const ledger = center.ledger;
  const refunds = new RefundService(center);
  return mapServiceErrors<ServiceImpl<typeof CenterAdminService>>({
    async refundPayment(req, ctx) {
      requireAdmin(ctx);
      const refund = await mapErrors(() => refunds.refund({ vendorId: req.vendorId, tranId: req.tranId, amount: req.amount, requestId: req.requestId, reason: req.reason }));
      return { refund };
    },
    async createVendor(req, ctx) {
      requireAdmin(ctx);
      if (!ID_PATTERN.test(req.vendorId)) throw invalidArgument("BAD_VENDOR_ID", "vendor_id must be 1-128 characters of [A-Za-z0-9._:-]");
      const secret = new Uint8Array(randomBytes(32));
      const v = req.vendor;
      const created = await ledger.createVendor(
        { vendorId: req.vendorId, dnsName: v?.dnsName ?? "", ipAddr: v?.ipAddr ?? "", serverName: v?.serverName ?? req.vendorId, port: v?.port ?? 0 },
        { vendorId: req.vendorId, keyId: 1, secret },
      );
      if (!created) throw alreadyExists("VENDOR_EXISTS", `vendor ${req.vendorId} already exists; use RotateVendorSecret for a new secret`);
      return { vendorId: req.vendorId, vendorKeyId: 1, vendorSecret: secret };
    },
    async rotateVendorSecret(req, ctx) {
      requireAdmin(ctx);
      for (;;) {
        const v = await ledger.getVendor(req.vendorId);
        if (!v) throw notFound("UNKNOWN_VENDOR", `vendor ${req.vendorId} does not exist`);
        const keyId = Math.max(0, ...v.keys.map((k) => k.keyId)) + 1;
        const secret = new Uint8Array(randomBytes(32));
        if (await ledger.addVendorKey({ vendorId: req.vendorId, keyId, secret })) return { vendorKeyId: keyId, vendorSecret: secret };
      }
    },
    async createCampaign(req, ctx) {
      requireAdmin(ctx);
      if (!ID_PATTERN.test(req.campaignId)) throw invalidArgument("BAD_CAMPAIGN_ID", "campaign_id must be 1-128 characters of [A-Za-z0-9._:-]");
      if (!center.config.currencies.includes(req.currency)) throw invalidArgument("UNKNOWN_CURRENCY", `currency must be one of ${center.config.currencies.join(", ")}`);
      if (req.cap <= 0n) throw invalidArgument("BAD_AMOUNT", "cap must be positive");
      const c = await ledger.createCampaign({ campaignId: req.campaignId, vendorId: req.vendorId, currency: req.currency, cap: req.cap }).catch(mapLedgerError);
      return { campaign: toCampaign(c) };
    },
    async fundCampaign(req, ctx) {
      requireAdmin(ctx);
      if (req.amount <= 0n) throw invalidArgument("BAD_AMOUNT", "amount must be positive");
      if (!ID_PATTERN.test(req.requestId)) throw invalidArgument("BAD_REQUEST_ID", "request_id is required (1-128 characters of [A-Za-z0-9._:-])");
      const c = await ledger.fundCampaign(req.campaignId, req.amount, req.requestId, BigInt(Math.floor(Date.now() / 1000))).catch(mapLedgerError);
      return { campaign: toCampaign(c) };
    },
    async listCampaigns(_req, ctx) {
      requireAdmin(ctx);
      return { campaigns: (await ledger.listCampaigns()).map(toCampaign) };
    },
    async rotateKeys(req, ctx) {
      requireAdmin(ctx);
      const kind =
        req.kind === KeyKind.CERTIFICATE ? "certificate" : req.kind === KeyKind.CUSTOM_SECRET ? "custom" : req.kind === KeyKind.CHECKPOINT ? "checkpoint-ed25519" : undefined;
      if (!kind) throw invalidArgument("BAD_KEY_KIND", "kind must be KEY_KIND_CERTIFICATE, KEY_KIND_CUSTOM_SECRET or KEY_KIND_CHECKPOINT");
      return { kind: req.kind, secretId: await center.keys.rotate(kind) };
    },
    async listPayouts(req, ctx) {
      requireAdmin(ctx);
      const rows = await ledger.listPayouts(Math.min(req.limit || 100, 1000));
      return {
        payouts: rows.map((p) =>
          create(PayoutSchema, {
            payoutId: p.payoutId,
            customId: { secretId: 0, serialNumber: p.customerSerial },
            amount: p.amount,
            currency: p.currency,
            payoutAccount: p.account,
            createdAtUnix: p.createdAt,
          }),
        ),
      };
    },
    async audit(_req, ctx) {
      requireAdmin(ctx);
      const r = await ledger.audit();
      return {
        ok: r.ok,
        problems: r.problems,
        transfersChecked: BigInt(r.transfersChecked),
        accountsChecked: BigInt(r.accountsChecked),
        scripsChecked: BigInt(r.scripsChecked),
      };
    },
  });
}

export { Code, ConnectError };
