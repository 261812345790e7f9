import type { ServiceImpl } from "@connectrpc/connect";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { mapErrors } from "../server/errors.js";
import type { Seller } from "./seller.js";

/** Connect adapter for the seller: no logic here; errors go through the one mapping (src/server/errors.ts). */
export function sellerService(seller: Seller): ServiceImpl<typeof SellerService> {
  return {
    getCatalog: () => seller.catalog(),
    requestIssue: (req) => mapErrors(() => seller.requestIssue(req)),
    requestService: (req) => mapErrors(() => seller.requestService(req)),
    deliver: (req) => mapErrors(() => seller.deliver(req)),
  };
}
