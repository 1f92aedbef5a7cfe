// Headless Debian Chromium through playwright-core, with every `*.workspaces.test` host mapped to loopback.
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(opts: { zone?: string } = {}): Promise<Browser> {
  const zone = opts.zone ?? 'workspaces.test';
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
      // Wildcard test hosts resolve to loopback; nothing else is mapped, so no traffic leaves the machine.
      `--host-resolver-rules=MAP *.${zone} 127.0.0.1, MAP ${zone} 127.0.0.1`,
    ],
  });
}
