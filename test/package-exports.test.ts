/** Every entry package.json exports exists and loads, by the package's own name as a user would import it. */
import test from "ava";
import { existsSync, readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { name: string; exports: Record<string, string> };

for (const [entry, file] of Object.entries(pkg.exports)) {
  test(`exports "${entry}" -> ${file} exists and imports`, async (t) => {
    t.true(existsSync(file), `${file} is missing`);
    const spec = entry === "." ? pkg.name : `${pkg.name}/${entry.slice(2)}`;
    const m = (await import(spec)) as Record<string, unknown>;
    t.true(Object.keys(m).length > 0, `${spec} exports something`);
  });
}

test('the main entry offers the center, the seller and the reason catalogue', async (t) => {
  const m = (await import(pkg.name)) as Record<string, unknown>;
  for (const name of ["startCenterServer", "startSellerServer", "PaymentCenter", "Seller", "REASONS", "errorReason"]) t.is(typeof m[name] === "undefined", false, name);
});
