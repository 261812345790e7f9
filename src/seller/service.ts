import type { ServiceImpl } from "@connectrpc/connect";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import type { Seller } from "./seller.js";

/** Connect adapter for the seller: no logic here. */
export function sellerService(seller: Seller): ServiceImpl<typeof SellerService> {
  return {
    getCatalog: () => seller.catalog(),
    requestIssue: (req) => seller.requestIssue(req),
    requestService: (req) => seller.requestService(req),
    deliver: (req) => seller.deliver(req),
  };
}
