// How the browser tests and measurements start Chromium on this project's machines: Debian's
// `chromium`, headless, with nothing that reaches the network on its own (see
// ../shared/TOOLCHAIN.md: `npx playwright install` cannot work here). Shared by
// admin/tests, examples/todo-react/tests and scripts/measure-admin.mjs.
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
