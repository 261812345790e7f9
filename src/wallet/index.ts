/**
 * Scripwire wallet library: `import { Wallet, FileWalletStore } from "scripwire/wallet"`.
 *
 * Layers, as in cashu-ts: thin typed clients (client.ts) -> the stateful
 * `Wallet` that runs the protocol (wallet.ts) -> a `WalletStore` for
 * persistence (store.ts). Every error is a `ScripwireError` subclass
 * (errors.ts).
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
export { FileWalletStore, MemoryWalletStore, SCRYPT_LOG_N_DEFAULT, WALLET_FILE_BYTES_MAX } from "./store.js";
export type { DeliveryMethodName, FileWalletStoreOptions, HistoryRecord, PendingOperation, PendingStep, ReceiptRecord, WalletState, WalletStore } from "./store.js";
export { CenterClient, SellerClient, CALL_TIMEOUT_MS_DEFAULT } from "./client.js";
export type { ClientOptions, WireProtocol } from "./client.js";
export {
  AuthenticationError,
  IntegrityError,
  RefusedError,
  ScripwireError,
  StateError,
  UnavailableError,
  WALLET_EXIT,
  fromConnectError,
} from "./errors.js";
export type { ScripwireErrorCode, ScripwireErrorOptions } from "./errors.js";
