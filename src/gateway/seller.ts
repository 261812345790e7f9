/**
 * The gateway as a seller: the same SellerService the catalog mall serves,
 * so the existing wallet flow (S1 -> S2 -> S3..S6 at the center -> S7) pays
 * it unchanged. Prices come from the routes instead of a catalog; offers are
 * signed and receipts checked by the seller's own code (src/seller/offers.ts).
 *
 *  - S1 -> S2 (PM1_1 -> PM2_1 / PM2_2): the request URL must be the canonical
 *    item URL of a priced path (the one the 402 challenge names).
 *  - M1 -> M2: a gateway runs no campaigns; always GM2_2.
 *  - S7: the content of the item, fetched from the upstream, for wallets that
 *    want it in the reply (bounded: large bodies belong on the HTTP path).
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  CatalogEntrySchema,
  DeliverResponseSchema,
  GetCatalogResponseSchema,
  RequestIssueResponseSchema,
  RequestServiceResponseSchema,
  SellerService,
  type DeliverRequest,
  type DeliverResponse,
  type RequestServiceRequest,
  type RequestServiceResponse,
} from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, IdTypeSchema, OfferKind, ServerTypeSchema } from "../../gen/scripwire/v1/types_pb.js";
import { failedPrecondition, invalidArgument, mapErrors, resourceExhausted, unauthenticated, unavailable } from "../server/errors.js";
import { header } from "../protocol/header.js";
import { checkHeader } from "../seller/seller.js";
import { signOffer } from "../seller/offers.js";
import type { GatewayConfig } from "./config.js";
import { matchRoute, parseItemUrl } from "./routes.js";
import { verifyReceipt } from "./verify.js";

/** Largest body S7 returns inside a DeliverResponse; bigger content is fetched over HTTP with `Authorization: Scrip`. */
export const DELIVER_BYTES_MAX = 4 * 1024 * 1024;

export type FetchItem = (path: string, paid: { tranId: string; routeId: string }) => Promise<{ contentType: string; content: Uint8Array }>;

/** A failure of the upstream while delivering (S7): the receipt stays valid. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function refusalPage(title: string, reason: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(reason)}</p></body></html>`;
}

export class GatewaySeller {
  constructor(
    readonly config: GatewayConfig,
    private readonly clock: () => number,
    private readonly fetchItem: FetchItem,
  ) {}

  /** S1 -> S2: PM2_1 with a pOder for the route's price, or PM2_2. */
  requestService(req: RequestServiceRequest): RequestServiceResponse {
    checkHeader(req.header, CmdType.PM1_1);
    if (!req.customId) throw invalidArgument("MISSING_CUSTOM_ID", "custom_id is required: copy it from your scrip");
    const refuse = (why: string) =>
      create(RequestServiceResponseSchema, {
        header: header(CmdType.PM2_2, this.clock(), why, "NOT_FOR_SALE"),
        htmlDocument: refusalPage("Not for sale", why),
      });
    const item = parseItemUrl(req.requestUrl);
    if (!item) return refuse(`${req.requestUrl} is not an item URL in canonical form; use the item from the 402 challenge.`);
    const m = matchRoute(this.config.routes, item.host, item.key);
    if (!m || m.free) return refuse(`Nothing is sold at ${req.requestUrl}; it is free or not behind this gateway.`);
    if (req.pMethod !== m.route.deliveryMethod) {
      return refuse(`${m.route.title} is sold as ${DeliveryMethod[m.route.deliveryMethod]} only.`);
    }
    const order = signOffer(
      this.config,
      {
        kind: OfferKind.PAY,
        amount: m.route.price,
        currency: m.route.currency,
        item: req.requestUrl,
        campaignId: "",
        deliveryMethod: m.route.deliveryMethod,
        customId: create(IdTypeSchema, { secretId: req.customId.secretId, serialNumber: req.customId.serialNumber }),
      },
      this.clock(),
    );
    return create(RequestServiceResponseSchema, { header: header(CmdType.PM2_1, this.clock()), order });
  }

  /** S7: the item's content against a receipt, within the route's lifetime. */
  async deliver(req: DeliverRequest): Promise<DeliverResponse> {
    checkHeader(req.header, CmdType.PM8_1);
    const r = req.receipt;
    if (!r) throw invalidArgument("MISSING_RECEIPT", "receipt is required: pass the receipt from ConfirmPayment (S6)");
    const v = verifyReceipt(this.config, r, undefined, this.clock());
    if (!v.ok) {
      if (v.reason === "EXPIRED" || v.reason === "NOT_YET_VALID") throw failedPrecondition(v.reason, "the receipt is outside its route's lifetime; pay again");
      throw unauthenticated("BAD_RECEIPT", `the receipt does not open anything here (${v.reason})`);
    }
    const item = parseItemUrl(r.requestUrl)!;
    const route = matchRoute(this.config.routes, item.host, item.key)!.route;
    let got: { contentType: string; content: Uint8Array };
    try {
      got = await this.fetchItem(item.path, { tranId: r.tranId, routeId: route.id });
    } catch (e) {
      if (e instanceof UpstreamError && e.tooLarge) {
        throw resourceExhausted("CONTENT_TOO_LARGE", `the content is larger than ${DELIVER_BYTES_MAX} bytes; fetch ${r.requestUrl} with "Authorization: Scrip <receipt>" instead`);
      }
      throw unavailable("UPSTREAM_FAILED", `the site behind the gateway failed (${(e as Error).message}); the receipt stays valid, retry`);
    }
    const save = r.deliveryMethod === DeliveryMethod.SAVE;
    return create(DeliverResponseSchema, {
      header: header(CmdType.PM8_1, this.clock()),
      deliveryMethod: r.deliveryMethod,
      contentType: save ? "application/octet-stream" : got.contentType,
      fileName: save ? item.path.split("/").filter(Boolean).pop() || "content" : "",
      content: got.content,
    });
  }
}

/** Connect adapter: no logic here. */
export function gatewaySellerService(s: GatewaySeller): ServiceImpl<typeof SellerService> {
  const c = s.config;
  return {
    getCatalog: () =>
      create(GetCatalogResponseSchema, {
        header: header(CmdType.UNSPECIFIED, Date.now()),
        vendor: create(ServerTypeSchema, c.identity),
        vendorId: c.vendorId,
        entries: c.routes.map((r) =>
          create(CatalogEntrySchema, { requestUrl: r.path.source, title: r.title, price: r.price, currency: r.currency, deliveryMethods: [r.deliveryMethod] }),
        ),
      }),
    requestIssue: () =>
      create(RequestIssueResponseSchema, {
        header: header(CmdType.GM2_2, Date.now(), "This gateway sells access; it pays no scrip.", "ISSUE_REFUSED"),
        htmlDocument: refusalPage("No scrip here", "This gateway sells access; it pays no scrip."),
      }),
    // The one mapping of core refusals and out-of-range fields (src/server/errors.ts).
    requestService: (req) => mapErrors(() => s.requestService(req)),
    deliver: (req) => mapErrors(() => s.deliver(req)),
  };
}
