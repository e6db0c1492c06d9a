// Drive the system's Chromium (headless, fake microphone) through a dsplug web app page.
//
//   node driver.mjs --url URL --chromium PATH --out result.json [--wav FILE] [--screenshot PNG] [--timeout MS]
//
// Opens URL in a fresh headless Chromium whose fake microphone plays --wav once (`%noloop`),
// waits until the page sets window.dsplug.done (or .error), and writes {state, requests,
// external, console} as JSON: state is the page's window.dsplug (its per-window results);
// external lists requests that left the page's origin (there must be none).
import {writeFileSync} from 'node:fs';
import {chromium} from 'playwright-core';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const url = arg('--url');
const flags = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
  '--disable-background-networking', '--disable-component-update', '--autoplay-policy=no-user-gesture-required',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
];
if (arg('--wav')) flags.push(`--use-file-for-fake-audio-capture=${arg('--wav')}%noloop`);

const browser = await chromium.launch({executablePath: arg('--chromium'), headless: true, args: flags});
const requests = [];
const messages = [];
let result;
try {
  const page = await browser.newPage({viewport: {width: 760, height: 820}});
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => messages.push(`pageerror: ${error}`));
  await page.goto(url);
  await page.waitForFunction(() => window.dsplug && (window.dsplug.done || window.dsplug.error), null,
                             {timeout: Number(arg('--timeout', 120000))});
  const state = await page.evaluate(() => window.dsplug);
  if (arg('--screenshot')) await page.screenshot({path: arg('--screenshot'), fullPage: true});
  const origin = new URL(url).origin;
  const external = requests.filter((r) => !r.startsWith(origin) && !r.startsWith('data:') && !r.startsWith('blob:'));
  result = {state, requests, external, console: messages.slice(0, 50)};
} finally {
  await browser.close();
}
writeFileSync(arg('--out'), JSON.stringify(result, null, 1));
