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

const METHODS: Record<string, DeliveryMethod> = { VIEW: DeliveryMethod.VIEW, SAVE: DeliveryMethod.SAVE };
const KINDS: Record<string, CampaignItemKind> = {
  AD: CampaignItemKind.AD,
  SURVEY: CampaignItemKind.SURVEY,
  QUIZ: CampaignItemKind.QUIZ,
};

/** Parses a seller config object (as read from JSON). */
export function parseSellerConfig(raw: any): SellerConfig {
  const vendorId = str(raw.vendorId, "vendorId");
  const keys = new Map<number, Uint8Array>();
  for (const [id, hex] of Object.entries(raw.vendorKeys ?? {})) {
    if (!/^[0-9a-f]{64}$/i.test(String(hex))) throw new Error(`vendorKeys.${id} must be 64 hex characters (the secret from 'scripwire center admin create-vendor')`);
    keys.set(Number(id), new Uint8Array(Buffer.from(String(hex), "hex")));
  }
  if (keys.size === 0) throw new Error("vendorKeys needs at least one vendor secret");
  const catalog: CatalogItem[] = (raw.catalog ?? []).map((c: any, i: number) => {
    const w = `catalog[${i}]`;
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
    const campaignId = str(camp.campaignId, `campaigns[${ci}].campaignId`);
    for (const [ii, it] of (camp.items ?? []).entries()) {
      const w = `campaigns[${ci}].items[${ii}]`;
      const kind = KINDS[it.kind];
      if (!kind) throw new Error(`${w}.kind must be AD, SURVEY or QUIZ`);
      if (kind === CampaignItemKind.QUIZ && !it.answer) throw new Error(`${w}: a QUIZ needs an answer`);
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
    identity: {
      dnsName: raw.identity?.dnsName ?? "localhost",
      ipAddr: raw.identity?.ipAddr ?? "",
      serverName: raw.identity?.serverName ?? vendorId,
      port: Number(raw.identity?.port ?? 0),
    },
    vendorKeys: keys,
    offerLifetimeSeconds: Number(raw.offerLifetimeSeconds ?? 600),
    catalog,
    campaignItems,
  };
}

export function loadSellerConfig(path: string): SellerConfig {
  return parseSellerConfig(JSON.parse(readFileSync(path, "utf8")));
}
