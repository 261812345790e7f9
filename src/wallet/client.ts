/**
 * Thin typed clients for the payment center and a seller: one method per RPC,
 * a default deadline on every call, and every failure turned into a typed
 * wallet error (see errors.ts). No protocol logic here (steps.ts and core.ts
 * run the protocol) and no transport either: a {@link Connection} is
 * injected, made by connect-node.ts in Node and connect-web.ts in the
 * browser, so this file bundles for both.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
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
  type SyncRequestSchema,
  type SyncResponse,
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

/** A transport and how to end it (an HTTP/2 session in Node; nothing to end for fetch in the browser). */
export interface Connection {
  transport: Transport;
  close(): void;
}

/** Opens a connection to a center or seller; the wallet core's only way to reach the network. */
export type Connector = (baseUrl: string, role: "center" | "seller") => Connection;

type Init<S> = S extends DescMessage ? MessageInitShape<S> : never;

abstract class BaseClient<S extends typeof PaymentCenterService | typeof SellerService> {
  protected readonly raw: Client<S>;
  private readonly owned: Connection;
  private readonly timeoutMs: number;

  constructor(
    readonly baseUrl: string,
    service: S,
    private readonly serverName: string,
    connection: Connection,
    timeoutMs?: number,
  ) {
    this.owned = connection;
    this.raw = createClient(service, connection.transport);
    this.timeoutMs = timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT;
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
 * const center = new CenterRpc("http://127.0.0.1:7100", connectNode("http://127.0.0.1:7100", { protocol: "grpc" }));
 * const info = await center.getCenterInfo();
 * center.close();
 * ```
 * @throws {UnavailableError} the center could not be reached or timed out.
 * @throws {AuthenticationError} a message hash or offer MAC did not verify.
 * @throws {RefusedError} FAILED_PRECONDITION and similar status refusals.
 */
export class CenterRpc extends BaseClient<typeof PaymentCenterService> {
  constructor(baseUrl: string, connection: Connection, timeoutMs?: number) {
    super(baseUrl, PaymentCenterService, "payment center", connection, timeoutMs);
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
  sync(req: Init<typeof SyncRequestSchema>): Promise<SyncResponse> {
    return this.call("SY1", (o) => this.raw.sync(req, o));
  }
}

/**
 * A seller / internet mall (SellerService), one method per RPC.
 *
 * @example
 * ```ts
 * const seller = new SellerRpc("http://127.0.0.1:7200", connection);
 * const { entries, campaignItems } = await seller.getCatalog();
 * seller.close();
 * ```
 * @throws {UnavailableError} the seller could not be reached or timed out.
 * @throws {AuthenticationError} the seller did not accept a receipt.
 */
export class SellerRpc extends BaseClient<typeof SellerService> {
  constructor(baseUrl: string, connection: Connection, timeoutMs?: number) {
    super(baseUrl, SellerService, "seller", connection, timeoutMs);
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
