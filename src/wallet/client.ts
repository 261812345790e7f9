/**
 * Thin typed clients for the payment center and a seller: one method per RPC,
 * a default deadline on every call, and every failure turned into a typed
 * wallet error (see errors.ts). No protocol logic here; wallet.ts
 * orchestrates the steps.
 *
 * Each client owns its HTTP/2 session so `close()` ends it at once instead of
 * leaving an idle connection for the server to wait on.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  PaymentCenterService,
  type ConfirmIssueRequestSchema,
  type ConfirmIssueResponse,
  type ConfirmPaymentRequestSchema,
  type ConfirmPaymentResponse,
  type GetCenterInfoResponse,
  type InitIssueRequestSchema,
  type InitIssueResponse,
  type InitPaymentRequestSchema,
  type InitPaymentResponse,
  type IssueRequestSchema,
  type IssueResponse,
  type PayRequestSchema,
  type PayResponse,
  type RedeemRequestSchema,
  type RedeemResponse,
  type RegisterRequestSchema,
  type RegisterResponse,
  type RenewRequestSchema,
  type RenewResponse,
} from "../../gen/scripwire/v1/center_pb.js";
import {
  SellerService,
  type DeliverRequestSchema,
  type DeliverResponse,
  type GetCatalogResponse,
  type RequestIssueRequestSchema,
  type RequestIssueResponse,
  type RequestServiceRequestSchema,
  type RequestServiceResponse,
} from "../../gen/scripwire/v1/seller_pb.js";
import { fromConnectError } from "./errors.js";

export type WireProtocol = "connect" | "grpc" | "grpc-web";

/** Default per-call deadline: long enough for a group commit under load, short enough that a dead server is noticed. */
export const CALL_TIMEOUT_MS_DEFAULT = 10_000;

export interface ClientOptions {
  /** Wire protocol. Default "connect" (Connect over HTTP/2). */
  protocol?: WireProtocol;
  /** Deadline of every call in milliseconds. Default {@link CALL_TIMEOUT_MS_DEFAULT}. */
  timeoutMs?: number;
  /** PEM CA to trust for https:// URLs (self-signed test certificates). */
  ca?: string | Buffer;
  /** Use this transport instead of opening one (in-memory router transports in tests). */
  transport?: Transport;
}

interface Owned {
  transport: Transport;
  close(): void;
}

function openTransport(baseUrl: string, opts: ClientOptions): Owned {
  if (opts.transport) return { transport: opts.transport, close: () => {} };
  const protocol = opts.protocol ?? "connect";
  const nodeOptions = opts.ca ? { ca: opts.ca } : undefined;
  if (protocol === "grpc-web") {
    return { transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions }), close: () => {} };
  }
  const sessionManager = new Http2SessionManager(baseUrl, undefined, nodeOptions);
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl, sessionManager })
      : createConnectTransport({ baseUrl, httpVersion: "2", sessionManager });
  return { transport, close: () => sessionManager.abort() };
}

type Init<S> = S extends import("@bufbuild/protobuf").DescMessage ? MessageInitShape<S> : never;

abstract class BaseClient<S extends typeof PaymentCenterService | typeof SellerService> {
  protected readonly raw: Client<S>;
  private readonly owned: Owned;
  private readonly timeoutMs: number;

  constructor(
    readonly baseUrl: string,
    service: S,
    private readonly serverName: string,
    opts: ClientOptions = {},
  ) {
    this.owned = openTransport(baseUrl, opts);
    this.raw = createClient(service, this.owned.transport);
    this.timeoutMs = opts.timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT;
  }

  /** Runs one call with the deadline, mapping any failure to a typed error whose cmdType is `cmd`. */
  protected async call<T>(cmd: string, fn: (o: { timeoutMs: number }) => Promise<T>): Promise<T> {
    try {
      return await fn({ timeoutMs: this.timeoutMs });
    } catch (e) {
      throw fromConnectError(e, cmd, `${this.serverName} ${this.baseUrl}`);
    }
  }

  /** Ends the HTTP/2 session; in-flight calls fail. */
  close(): void {
    this.owned.close();
  }
}

/**
 * The payment center (PaymentCenterService), one method per RPC.
 *
 * @example
 * ```ts
 * const center = new CenterClient("http://127.0.0.1:7100", { protocol: "grpc" });
 * const info = await center.getCenterInfo();
 * center.close();
 * ```
 * @throws {UnavailableError} the center could not be reached or timed out.
 * @throws {AuthenticationError} a message hash or offer MAC did not verify.
 * @throws {RefusedError} FAILED_PRECONDITION and similar status refusals.
 */
export class CenterClient extends BaseClient<typeof PaymentCenterService> {
  constructor(baseUrl: string, opts: ClientOptions = {}) {
    super(baseUrl, PaymentCenterService, "payment center", opts);
  }
  getCenterInfo(): Promise<GetCenterInfoResponse> {
    return this.call("GetCenterInfo", (o) => this.raw.getCenterInfo({}, o));
  }
  register(req: Init<typeof RegisterRequestSchema>): Promise<RegisterResponse> {
    return this.call("UM1", (o) => this.raw.register(req, o));
  }
  initIssue(req: Init<typeof InitIssueRequestSchema>): Promise<InitIssueResponse> {
    return this.call("GM3_1", (o) => this.raw.initIssue(req, o));
  }
  issue(req: Init<typeof IssueRequestSchema>): Promise<IssueResponse> {
    return this.call("GM4_1", (o) => this.raw.issue(req, o));
  }
  confirmIssue(req: Init<typeof ConfirmIssueRequestSchema>): Promise<ConfirmIssueResponse> {
    return this.call("GM6_1", (o) => this.raw.confirmIssue(req, o));
  }
  initPayment(req: Init<typeof InitPaymentRequestSchema>): Promise<InitPaymentResponse> {
    return this.call("PM3_1", (o) => this.raw.initPayment(req, o));
  }
  pay(req: Init<typeof PayRequestSchema>): Promise<PayResponse> {
    return this.call("PM4_1", (o) => this.raw.pay(req, o));
  }
  confirmPayment(req: Init<typeof ConfirmPaymentRequestSchema>): Promise<ConfirmPaymentResponse> {
    return this.call("PM6_1", (o) => this.raw.confirmPayment(req, o));
  }
  renew(req: Init<typeof RenewRequestSchema>): Promise<RenewResponse> {
    return this.call("RN1", (o) => this.raw.renew(req, o));
  }
  redeem(req: Init<typeof RedeemRequestSchema>): Promise<RedeemResponse> {
    return this.call("RD1", (o) => this.raw.redeem(req, o));
  }
}

/**
 * A seller / internet mall (SellerService), one method per RPC.
 *
 * @example
 * ```ts
 * const seller = new SellerClient("http://127.0.0.1:7200");
 * const { entries, campaignItems } = await seller.getCatalog();
 * seller.close();
 * ```
 * @throws {UnavailableError} the seller could not be reached or timed out.
 * @throws {AuthenticationError} the seller did not accept a receipt.
 */
export class SellerClient extends BaseClient<typeof SellerService> {
  constructor(baseUrl: string, opts: ClientOptions = {}) {
    super(baseUrl, SellerService, "seller", opts);
  }
  getCatalog(): Promise<GetCatalogResponse> {
    return this.call("GetCatalog", (o) => this.raw.getCatalog({}, o));
  }
  requestIssue(req: Init<typeof RequestIssueRequestSchema>): Promise<RequestIssueResponse> {
    return this.call("GM1_1", (o) => this.raw.requestIssue(req, o));
  }
  requestService(req: Init<typeof RequestServiceRequestSchema>): Promise<RequestServiceResponse> {
    return this.call("PM1_1", (o) => this.raw.requestService(req, o));
  }
  deliver(req: Init<typeof DeliverRequestSchema>): Promise<DeliverResponse> {
    return this.call("PM8_1", (o) => this.raw.deliver(req, o));
  }
}
