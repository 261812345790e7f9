/**
 * Scripwire wallet library: `import { Wallet, FileWalletStore } from "scripwire/wallet"`.
 *
 * Layers, as in cashu-ts: thin typed clients (client.ts, over an injected
 * Connector: connect-node.ts here, connect-web.ts in the browser) -> the
 * platform-neutral `WalletCore` that runs the protocol (core.ts: flows;
 * steps.ts: step runner and the one value step; journal.ts: write-ahead
 * journal) -> a `WalletStore` for persistence (state.ts interface;
 * store.ts FileWalletStore). `Wallet` (wallet.ts) is the core wired for
 * Node. Every error is a `ScripwireError` subclass (errors.ts).
 */
export { Wallet, RETRANSMISSIONS_MAX_DEFAULT, HISTORY_ENTRIES_MAX, RECEIPTS_MAX } from "./wallet.js";
export type {
  Balance,
  BuyResult,
  Catalog,
  CenterInfo,
  Delivery,
  EarnResult,
  HistoryEntry,
  RecoveryResult,
  RedeemResult,
  RegisterOptions,
  RegisterProfile,
  RegisterResult,
  RenewResult,
  WalletOptions,
  WalletProgress,
  WalletStep,
} from "./wallet.js";
export type { RestoreOptions, RestoreResult, SyncResult } from "./restore.js";
export { scripFetch, ROUTE_RECEIPT_TRIES_MAX } from "./fetch.js";
export type { ScripFetchOptions, ScripFetchPayment, ScripResponse } from "./fetch.js";
export { FileWalletStore, MemoryWalletStore, SCRYPT_LOG_N_DEFAULT, WALLET_FILE_BYTES_MAX } from "./store.js";
export type { DeliveryMethodName, FileWalletStoreOptions, HistoryRecord, JournalRecord, PendingOperation, PendingStep, ReceiptRecord, WalletState, WalletStore } from "./store.js";
export { CALL_TIMEOUT_MS_DEFAULT, CenterRpc, SellerRpc } from "./client.js";
export type { Connection, Connector, WireProtocol } from "./client.js";
export { CenterClient, SellerClient, connectNode, nodeConnector } from "./connect-node.js";
export type { ClientOptions } from "./connect-node.js";
export { Journal, JOURNAL_RECORDS_MAX } from "./journal.js";
export { WalletCore } from "./core.js";
export type { WalletCoreOptions } from "./core.js";
export {
  AuthenticationError,
  IntegrityError,
  RefusedError,
  ScripwireError,
  StateError,
  UnavailableError,
  RateLimitedError,
  WALLET_EXIT,
  fromConnectError,
} from "./errors.js";
export type { ScripwireErrorCode, ScripwireErrorOptions } from "./errors.js";
