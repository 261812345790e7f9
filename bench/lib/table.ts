/** Plain-text tables for the final report on stdout. */
export function table(title: string, header: string[], rows: Array<Array<string | number>>, alignRight: boolean[] = []): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (alignRight[i] ?? i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const sep = widths.map((w) => "-".repeat(w)).join("  ");
  return [`\n${title}`, line(header), sep, ...cells.slice(1).map(line)].join("\n");
}
