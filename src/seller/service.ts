import type { ServiceImpl } from "@connectrpc/connect";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { UnsupportedAlgorithmError } from "../crypto/mac.js";
import { invalidArgument } from "../protocol/errors.js";
import type { Seller } from "./seller.js";

/** A value no canonical encoding accepts (a negative enum from the wire) is the caller's malformed input. */
function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RangeError || e instanceof UnsupportedAlgorithmError) throw invalidArgument("BAD_FIELD", `a field is out of range: ${e.message}`);
    throw e;
  }
}

/** Connect adapter for the seller: no logic here. */
export function sellerService(seller: Seller): ServiceImpl<typeof SellerService> {
  return {
    getCatalog: () => seller.catalog(),
    requestIssue: (req) => guard(() => seller.requestIssue(req)),
    requestService: (req) => guard(() => seller.requestService(req)),
    deliver: (req) => guard(() => seller.deliver(req)),
  };
}
