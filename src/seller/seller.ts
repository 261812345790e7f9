/**
 * The seller's protocol logic (M1 -> M2, S1 -> S2, S7): decide whether an
 * answer earns scrip, quote prices, and deliver content against the center's
 * receipt. The seller signs what it offers with its vendor secret, so the
 * amount is what the seller said, whatever the wallet claims later.
 */
import { MemorySurveyStore, SURVEY_ANSWERS_PER_CUSTOMER_MAX, type SurveyAnswer, type SurveyStore } from "./survey.js";
import { create } from "@bufbuild/protobuf";
import {
  CampaignItemKind,
  CampaignItemSchema,
  CatalogEntrySchema,
  DeliverResponseSchema,
  GetCatalogResponseSchema,
  RequestIssueResponseSchema,
  RequestServiceResponseSchema,
  type DeliverRequest,
  type DeliverResponse,
  type GetCatalogResponse,
  type RequestIssueRequest,
  type RequestIssueResponse,
  type RequestServiceRequest,
  type RequestServiceResponse,
} from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, IdTypeSchema, OfferKind, ServerTypeSchema, type HeaderType, type Offer } from "../../gen/scripwire/v1/types_pb.js";
import { MAC_BYTES } from "../crypto/mac.js";
import { checkProtocolVersion, header } from "../protocol/header.js";
import { refusal } from "../protocol/refusal.js";
import type { SellerConfig } from "./catalog.js";
import { checkReceiptSignature, signOffer, type OfferFields } from "./offers.js";

const ANSWER_MAX = 2000;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function refusalPage(title: string, reason: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(reason)}</p></body></html>`;
}

/** Every seller call (mall or gateway) names its cmd_type and the protocol version, as every center call does. */
export function checkHeader(h: HeaderType | undefined, want: CmdType): void {
  if (h?.cmdType !== want) {
    throw refusal("WRONG_CMD_TYPE", `header.cmd_type must be ${CmdType[want]}; got ${h ? (CmdType[h.cmdType] ?? h.cmdType) : "no header"}`);
  }
  checkProtocolVersion(h);
}

export type { SurveyAnswer } from "./survey.js";

export class Seller {
  private readonly clock: () => number;
  /** Survey answers collected (the advertiser's reason for paying): on disk, one per (customer, item), see survey-store.ts. */
  readonly surveys: SurveyStore;

  constructor(
    readonly config: SellerConfig,
    clock?: () => number,
    surveys?: SurveyStore,
  ) {
    this.clock = clock ?? Date.now;
    // The protocol core takes its storage from outside (seller/server.ts passes the SQLite store).
    this.surveys = surveys ?? new MemorySurveyStore();
  }

  /** The answers kept (oldest first, at most `limit`). */
  answers(limit?: number): SurveyAnswer[] {
    return this.surveys.list(limit);
  }

  private offer(fields: OfferFields): Offer {
    return signOffer(this.config, fields, this.clock());
  }

  catalog(): GetCatalogResponse {
    return create(GetCatalogResponseSchema, {
      header: header(CmdType.UNSPECIFIED, this.clock()),
      vendor: create(ServerTypeSchema, this.config.identity),
      vendorId: this.config.vendorId,
      entries: this.config.catalog.map((c) =>
        create(CatalogEntrySchema, { requestUrl: c.requestUrl, title: c.title, price: c.price, currency: c.currency, deliveryMethods: c.methods }),
      ),
      campaignItems: this.config.campaignItems.map((i) =>
        create(CampaignItemSchema, {
          itemId: i.itemId,
          kind: i.kind,
          prompt: i.prompt,
          choices: i.choices,
          reward: i.reward,
          currency: i.currency,
          campaignId: i.campaignId,
        }),
      ),
    });
  }

  /** M1 -> M2. */
  requestIssue(req: RequestIssueRequest): RequestIssueResponse {
    checkHeader(req.header, CmdType.GM1_1);
    if (!req.customId) throw refusal("MISSING_CUSTOM_ID", "custom_id is required: copy it from your scrip");
    if (req.value.length > ANSWER_MAX) throw refusal("ANSWER_TOO_LONG", `value is limited to ${ANSWER_MAX} characters`);
    const refuse = (why: string) =>
      create(RequestIssueResponseSchema, {
        header: header(CmdType.GM2_2, this.clock(), why, "ISSUE_REFUSED"),
        htmlDocument: refusalPage("No scrip for this answer", why),
      });
    const item = this.config.campaignItems.find((i) => i.itemId === req.item);
    if (!item) return refuse(`There is no advertisement, survey or quiz called "${req.item}" here.`);
    const answer = req.value.trim();
    if (item.kind === CampaignItemKind.QUIZ && answer.toLowerCase() !== item.answer.trim().toLowerCase()) {
      return refuse("That is not the right answer; scrip is paid for right answers only.");
    }
    if (item.kind === CampaignItemKind.SURVEY) {
      if (answer.length === 0) return refuse("An empty answer earns nothing; please answer the question.");
      const kept = this.surveys.record({ campaignId: item.campaignId, itemId: item.itemId, customerSerial: req.customId.serialNumber, answer, at: this.clock() });
      if (!kept) return refuse(`This customer id has answered ${SURVEY_ANSWERS_PER_CUSTOMER_MAX} surveys here already.`);
    }
    const permit = this.offer({
      kind: OfferKind.ISSUE,
      amount: item.reward,
      currency: item.currency,
      item: item.itemId,
      campaignId: item.campaignId,
      deliveryMethod: DeliveryMethod.UNSPECIFIED,
      customId: create(IdTypeSchema, { secretId: req.customId.secretId, serialNumber: req.customId.serialNumber }),
    });
    return create(RequestIssueResponseSchema, { header: header(CmdType.GM2_1, this.clock()), permit });
  }

  /** S1 -> S2. */
  requestService(req: RequestServiceRequest): RequestServiceResponse {
    checkHeader(req.header, CmdType.PM1_1);
    if (!req.customId) throw refusal("MISSING_CUSTOM_ID", "custom_id is required: copy it from your scrip");
    const refuse = (why: string) =>
      create(RequestServiceResponseSchema, {
        header: header(CmdType.PM2_2, this.clock(), why, "NOT_FOR_SALE"),
        htmlDocument: refusalPage("Not for sale", why),
      });
    const entry = this.config.catalog.find((c) => c.requestUrl === req.requestUrl);
    if (!entry) return refuse(`Nothing is sold at ${req.requestUrl}.`);
    if (!entry.methods.includes(req.pMethod)) {
      return refuse(`${entry.title} is sold as ${entry.methods.map((m) => DeliveryMethod[m]).join(" or ")} only.`);
    }
    const order = this.offer({
      kind: OfferKind.PAY,
      amount: entry.price,
      currency: entry.currency,
      item: entry.requestUrl,
      campaignId: "",
      deliveryMethod: req.pMethod,
      customId: create(IdTypeSchema, { secretId: req.customId.secretId, serialNumber: req.customId.serialNumber }),
    });
    return create(RequestServiceResponseSchema, { header: header(CmdType.PM2_1, this.clock()), order });
  }

  /** S7: delivery against the center's receipt; the same receipt delivers again. */
  deliver(req: DeliverRequest): DeliverResponse {
    // S7 names its exchange, PM8_1 (service transmission), like every other call names its own.
    checkHeader(req.header, CmdType.PM8_1);
    const r = req.receipt;
    if (!r) throw refusal("MISSING_RECEIPT", "receipt is required: pass the receipt from ConfirmPayment (S6)");
    const bad = checkReceiptSignature(this.config, r);
    if (bad === "MALFORMED_RECEIPT") throw refusal("BAD_LENGTH", `receipt.mac must be ${MAC_BYTES} bytes`);
    if (bad) throw refusal("BAD_RECEIPT", "the receipt does not verify: it was altered or is not from this mall's payment center");
    const entry = this.config.catalog.find((c) => c.requestUrl === r.requestUrl);
    if (!entry) throw refusal("NOT_SOLD_HERE", `nothing is sold at ${r.requestUrl} any more; contact the seller for a refund`);
    const save = r.deliveryMethod === DeliveryMethod.SAVE;
    return create(DeliverResponseSchema, {
      header: header(CmdType.PM8_1, this.clock()),
      deliveryMethod: r.deliveryMethod,
      contentType: save ? "application/octet-stream" : entry.contentType,
      fileName: save ? entry.fileName : "",
      content: entry.content,
    });
  }
}
