/**
 * The package's main entry (`import … from "scripwire"`): run a payment center
 * or a seller in-process, and the protocol core's refusal catalogue. The
 * wallet library is its own entry, `scripwire/wallet`.
 */
export { startCenterServer, type CenterServerOptions, type RunningCenter } from "./center/server.js";
export { PaymentCenter, type CenterConfig } from "./center/center.js";
export { startSellerServer, type SellerServerOptions, type RunningSeller } from "./seller/server.js";
export { Seller } from "./seller/seller.js";
export { parseSellerConfig, type SellerConfig } from "./seller/catalog.js";
export { openLedger } from "./ledger/open.js";
export { REASONS, ProtocolError, isReason, type Reason, type Status } from "./protocol/refusal.js";
export { errorReason, ERROR_REASON_KEY } from "./server/errors.js";
