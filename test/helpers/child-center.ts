/** Spawns test/helpers/center-child.ts and waits for its listening line. */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface ChildCenter {
  url: string;
  port: number;
  metricsPort?: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function spawnCenter(options: { database: string; rateLimits?: unknown; metricsPort?: number; healthPollMs?: number }): Promise<ChildCenter> {
  const child = spawn(process.execPath, ["--import=tsx", "test/helpers/center-child.ts"], {
    env: { ...process.env, SCRIPWIRE_CHILD: JSON.stringify(options), SCRIPWIRE_LOG: "silent" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`center child exited ${code} before listening`)));
  });
  const info = JSON.parse(line) as { url: string; port: number; metricsPort?: number };
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    ...info,
    child,
    async stop() {
      child.stdin!.end();
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}
