/**
 * A seller's configuration: identity, vendor secret(s), priced content and
 * campaigns. Loaded from JSON (amounts as decimal strings, secrets as hex) and
 * checked at the boundary so a typo fails at start-up, not at the first sale.
 */
import { readFileSync } from "node:fs";
import { CampaignItemKind } from "../../gen/scripwire/v1/seller_pb.js";
import { DeliveryMethod } from "../../gen/scripwire/v1/types_pb.js";
import { I64_MAX } from "../money.js";

export interface CatalogItem {
  requestUrl: string;
  title: string;
  price: bigint;
  currency: string;
  methods: DeliveryMethod[];
  contentType: string;
  fileName: string;
  content: Uint8Array;
}

export interface CampaignItemConfig {
  itemId: string;
  campaignId: string;
  kind: CampaignItemKind;
  prompt: string;
  choices: string[];
  /** Quiz only: the right answer (compared trimmed and case-insensitively). Never sent to wallets. */
  answer: string;
  reward: bigint;
  currency: string;
}

export interface SellerConfig {
  vendorId: string;
  identity: { dnsName: string; ipAddr: string; serverName: string; port: number };
  /** Vendor secrets by generation; the highest signs offers. */
  vendorKeys: Map<number, Uint8Array>;
  offerLifetimeSeconds: number;
  catalog: CatalogItem[];
  campaignItems: CampaignItemConfig[];
}

function amount(v: unknown, where: string): bigint {
  if (typeof v !== "string" && typeof v !== "number") throw new Error(`${where} must be an integer amount`);
  if (!/^[0-9]+$/.test(String(v))) throw new Error(`${where} must be a non-negative integer in the currency's smallest unit, got ${v}`);
  const b = BigInt(v);
  if (b <= 0n || b > I64_MAX) throw new Error(`${where} must be between 1 and ${I64_MAX}`);
  return b;
}

function str(v: unknown, where: string, required = true): string {
  if (v === undefined && !required) return "";
  if (typeof v !== "string" || (required && v.length === 0)) throw new Error(`${where} must be a non-empty string`);
  return v;
}

/**
 * Every object in seller.json names only the fields docs/seller-config.md
 * specifies: a misspelt or unknown field (say `content_type` for
 * `contentType`) is an error at start-up, not a setting silently ignored.
 */
const FIELDS = {
  top: ["vendorId", "identity", "vendorKeys", "offerLifetimeSeconds", "catalog", "campaigns"],
  identity: ["dnsName", "ipAddr", "serverName", "port"],
  catalog: ["requestUrl", "title", "price", "currency", "methods", "contentType", "fileName", "content"],
  campaign: ["campaignId", "currency", "items"],
  item: ["itemId", "kind", "prompt", "choices", "answer", "reward", "currency"],
} as const;

function only(o: unknown, allowed: readonly string[], where: string): void {
  if (o === undefined) return;
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new Error(`${where} must be an object`);
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new Error(`${where}: unknown field "${k}"; the fields are ${allowed.join(", ")} (docs/seller-config.md)`);
  }
}

const METHODS: Record<string, DeliveryMethod> = { VIEW: DeliveryMethod.VIEW, SAVE: DeliveryMethod.SAVE };
const KINDS: Record<string, CampaignItemKind> = {
  AD: CampaignItemKind.AD,
  SURVEY: CampaignItemKind.SURVEY,
  QUIZ: CampaignItemKind.QUIZ,
};

/** Parses a seller config object (as read from JSON). */
/** A vendor's identity from a config file's `identity` object, with the defaults both the seller and the gateway use. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function vendorIdentity(identity: any, vendorId: string): SellerConfig["identity"] {
  return {
    dnsName: identity?.dnsName ?? "localhost",
    ipAddr: identity?.ipAddr ?? "",
    serverName: identity?.serverName ?? vendorId,
    port: Number(identity?.port ?? 0),
  };
}

export function parseSellerConfig(raw: any): SellerConfig {
  only(raw, FIELDS.top, "seller config");
  only(raw.identity, FIELDS.identity, "identity");
  const vendorId = str(raw.vendorId, "vendorId");
  const keys = new Map<number, Uint8Array>();
  for (const [id, hex] of Object.entries(raw.vendorKeys ?? {})) {
    if (!/^[0-9a-f]{64}$/i.test(String(hex))) throw new Error(`vendorKeys.${id} must be 64 hex characters (the secret from 'scripwire center admin create-vendor')`);
    keys.set(Number(id), new Uint8Array(Buffer.from(String(hex), "hex")));
  }
  if (keys.size === 0) throw new Error("vendorKeys needs at least one vendor secret");
  const catalog: CatalogItem[] = (raw.catalog ?? []).map((c: any, i: number) => {
    const w = `catalog[${i}]`;
    only(c, FIELDS.catalog, w);
    if (c.contentType !== undefined && (typeof c.contentType !== "string" || !/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/.test(c.contentType))) {
      throw new Error(`${w}.contentType must be a media type such as "text/html; charset=utf-8"`);
    }
    const methods = (c.methods ?? ["VIEW"]).map((m: string) => {
      const d = METHODS[m];
      if (!d) throw new Error(`${w}.methods: ${m} is not VIEW or SAVE`);
      return d;
    });
    return {
      requestUrl: str(c.requestUrl, `${w}.requestUrl`),
      title: str(c.title, `${w}.title`),
      price: amount(c.price, `${w}.price`),
      currency: str(c.currency, `${w}.currency`),
      methods,
      contentType: c.contentType ?? "text/html; charset=utf-8",
      fileName: c.fileName ?? (String(c.requestUrl).split("/").pop() || "content"),
      content: new TextEncoder().encode(str(c.content, `${w}.content`)),
    };
  });
  const campaignItems: CampaignItemConfig[] = [];
  for (const [ci, camp] of (raw.campaigns ?? []).entries()) {
    only(camp, FIELDS.campaign, `campaigns[${ci}]`);
    const campaignId = str(camp.campaignId, `campaigns[${ci}].campaignId`);
    for (const [ii, it] of (camp.items ?? []).entries()) {
      const w = `campaigns[${ci}].items[${ii}]`;
      only(it, FIELDS.item, w);
      const kind = KINDS[it.kind];
      if (!kind) throw new Error(`${w}.kind must be AD, SURVEY or QUIZ`);
      if (kind === CampaignItemKind.QUIZ && !it.answer) throw new Error(`${w}: a QUIZ needs an answer`);
      // AD and SURVEY items take no right answer: any acknowledgement (AD) or non-empty answer (SURVEY) earns.
      if (kind !== CampaignItemKind.QUIZ && it.answer !== undefined) throw new Error(`${w}: only a QUIZ has an answer (${it.kind} items earn on any ${it.kind === "AD" ? "acknowledgement" : "non-empty answer"})`);
      if (kind === CampaignItemKind.QUIZ && Array.isArray(it.choices) && it.choices.length > 0 && !it.choices.some((c: unknown) => String(c).trim().toLowerCase() === String(it.answer).trim().toLowerCase())) {
        throw new Error(`${w}: the answer must be one of the choices`);
      }
      campaignItems.push({
        itemId: str(it.itemId, `${w}.itemId`),
        campaignId,
        kind,
        prompt: str(it.prompt, `${w}.prompt`),
        choices: (it.choices ?? []).map(String),
        answer: it.answer ? String(it.answer) : "",
        reward: amount(it.reward, `${w}.reward`),
        currency: str(it.currency ?? camp.currency, `${w}.currency`),
      });
    }
  }
  return {
    vendorId,
    identity: vendorIdentity(raw.identity, vendorId),
    vendorKeys: keys,
    offerLifetimeSeconds: Number(raw.offerLifetimeSeconds ?? 600),
    catalog,
    campaignItems,
  };
}

export function loadSellerConfig(path: string): SellerConfig {
  return parseSellerConfig(JSON.parse(readFileSync(path, "utf8")));
}
