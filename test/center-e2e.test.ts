/**
 * Every protocol scenario against real servers: center and seller listening
 * on loopback, each call crossing HTTP/2. The Connect protocol runs every
 * scenario; gRPC framing runs the full message walk again.
 */
import test from "ava";
import { realWorld } from "./helpers/real.js";
import { registerScenarios } from "./helpers/scenarios.js";

registerScenarios(test, (opts) => realWorld({ ...opts, protocol: "connect" }), "HTTP/2 Connect");
registerScenarios(test, (opts) => realWorld({ ...opts, protocol: "grpc" }), "HTTP/2 gRPC", ["every message", "two concurrent spends", "lost M5"]);
