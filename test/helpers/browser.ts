import { type Browser, type BrowserContext, type CDPSession, chromium, type Page } from 'playwright-core';

/** Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it when missing). */
export const CHROMIUM = process.env.TEST_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless Chromium for the web pages' tests: no sandbox (containers), and nothing that reaches
 * the network by itself (updates, sync, QUIC probes), so a test talks only to our server.
 */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Like Promise.all, but throws only once every promise has settled. Starting the server and the
 * browser side by side, each assigning itself as it comes up, a browser that failed to launch
 * must not leave the server still starting after afterAll has looked for it to stop.
 */
export async function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export interface VirtualAuthenticator {
  cdp: CDPSession;
  authenticatorId: string;
  /** The passkeys it holds (credential ids as Chrome reports them: standard base64). */
  credentials(): Promise<{ credentialId: string; isResidentCredential: boolean; signCount: number }[]>;
  /** Whether it answers "yes, the user was verified" (fingerprint, PIN) from now on. */
  setUserVerified(verified: boolean): Promise<void>;
}

/**
 * Chrome's virtual authenticator over CDP for one page: a platform authenticator (like Touch ID
 * or Windows Hello) with resident keys and user verification, which always says yes. The
 * passkeys it creates belong to the page's browser context, as on a real device.
 */
export async function addVirtualAuthenticator(page: Page): Promise<VirtualAuthenticator> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    cdp,
    authenticatorId,
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials;
    },
    async setUserVerified(verified) {
      await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: verified });
    },
  };
}

/** A fresh context (no cookies) and page, with a phone- or desktop-sized viewport. */
export async function newPage(
  browser: Browser,
  viewport: { width: number; height: number } = { width: 1280, height: 900 },
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  return { context, page };
}
