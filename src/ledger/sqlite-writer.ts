/**
 * The ledger's writer thread, plain: the entry module sqlite-worker.ts starts
 * (bundled) for a SqliteWorkerLedger. Everything it does is in writer-host.ts.
 */
import { hostWriter } from "./writer-host.js";

hostWriter();
