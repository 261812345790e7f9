/**
 * The wallet in Node: the platform-neutral core (core.ts) with connect-node
 * transports (connect-node.ts) and, usually, a FileWalletStore (store.ts).
 */
import type { Transport } from "@connectrpc/connect";
import type { Connector, WireProtocol } from "./client.js";
import { nodeConnector } from "./connect-node.js";
import { WalletCore, type WalletCoreOptions } from "./core.js";
import { scripFetch, type ScripFetchOptions, type ScripResponse } from "./fetch.js";

export * from "./core.js";

export interface WalletOptions extends Omit<WalletCoreOptions, "connect"> {
  /** Wire protocol for every call. Default "connect". */
  protocol?: WireProtocol;
  /** Transports to use instead of opening HTTP/2 connections (in-memory tests, interceptors). */
  transport?: (baseUrl: string, role: "center" | "seller") => Transport;
  /** PEM CA to trust for https:// URLs. */
  ca?: string | Buffer;
  /** A connector of your own; overrides protocol, transport and ca. */
  connect?: Connector;
}

/**
 * A customer's wallet in Node: one live scrip at one payment center.
 *
 * @example
 * ```ts
 * import { Wallet, FileWalletStore } from "scripwire/wallet";
 * const wallet = await Wallet.open({ store: new FileWalletStore("wallet.json") });
 * if (!wallet.registered) await wallet.register("http://127.0.0.1:7100", { name: "Kim" });
 * await wallet.earn("http://127.0.0.1:7200", "q1", "hash");
 * const { delivery } = await wallet.buy("http://127.0.0.1:7200", "/articles/hash-cash", "VIEW");
 * console.log(wallet.balance().value, new TextDecoder().decode(delivery?.content));
 * await wallet.close();
 * ```
 */
export class Wallet extends WalletCore {
  /**
   * Opens a wallet on a store (locking it if the store can), and finishes any
   * operation an earlier process left in the journal.
   *
   * @throws {StateError} WALLET_LOCKED, PASSPHRASE_REQUIRED, BAD_WALLET_FILE.
   * @throws {AuthenticationError} BAD_PASSPHRASE.
   */
  static override async open(opts: WalletOptions): Promise<Wallet> {
    const { protocol, transport, ca, connect, ...core } = opts;
    const w = new Wallet({ ...core, connect: connect ?? nodeConnector({ protocol, transport, ca }) });
    await w.start();
    return w;
  }

  /**
   * HTTP fetch that pays a Scripwire gateway's 402 (up to `maxPrice`) and
   * retries; reuses a receipt still inside its lifetime. See src/wallet/fetch.ts.
   */
  fetch(url: string | URL, opts: ScripFetchOptions): Promise<ScripResponse> {
    return scripFetch(this, url, opts);
  }
}
