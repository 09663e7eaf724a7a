// test/tools/dashboard-browser.js: drives Debian's headless Chromium with
// puppeteer-core for test/t/dashboard.pl. Reads one command a line on stdin,
// answers each with one JSON line on stdout:
//   goto URL [WIDTH HEIGHT]   load the page, wait for its first refresh
//   state                     what the page shows: tables, charts, banner, ...
//   set ID VALUE              set a control and wait until the answers reloaded
//   wait-text TEXT SECONDS    wait until the page's text contains TEXT
//   wait-state STATE SECONDS  wait until the live pill's data-state is STATE
//   screenshot PATH [WIDTH HEIGHT]  a full-page PNG
//   quit
// puppeteer-core is installed by the test into a temporary directory
// (NODE_PATH); nothing of it is in the repository.
'use strict';
const puppeteer = require('puppeteer-core');
const readline = require('readline');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function pageState(page) {
  return page.evaluate(() => {
    const tables = {};
    for (const t of document.querySelectorAll('table.data')) {
      tables[t.id] = {
        head: t.tHead && t.tHead.rows[0] ? [...t.tHead.rows[0].cells].map((c) => c.textContent) : [],
        rows: [...t.tBodies[0].rows].filter((r) => !r.classList.contains('empty'))
          .map((r) => [...r.cells].map((c) => c.textContent)),
      };
    }
    const charts = {};
    for (const c of document.querySelectorAll('canvas')) {
      charts[c.id] = { rendered: c.getAttribute('data-rendered') === 'true', points: Number(c.getAttribute('data-points') || 0),
        width: c.width, height: c.height };
    }
    const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : null; };
    return {
      marker: window.__ppMarker,
      refreshes: Number(document.body.getAttribute('data-refreshes') || 0),
      answerLoads: Number(document.body.getAttribute('data-answer-loads') || 0),
      live: document.getElementById('live').getAttribute('data-state'),
      banner: document.getElementById('banner').hidden ? null
        : { title: text('banner-title'), detail: text('banner-detail'), hint: text('banner-hint') },
      readAt: text('read-at'),
      kpis: { rate: text('kpi-rate'), messages: text('kpi-messages'), dead: text('kpi-dead') },
      errors: [...document.querySelectorAll('.card .error')].map((e) => e.textContent).filter((t) => t),
      controlsShown: !document.getElementById('control').hidden,
      hash: location.hash,
      scripted: !!document.querySelector('script:not([src])'),
      images: document.images.length,
      tables: tables,
      charts: charts,
      scrollWidth: document.documentElement.scrollWidth,
      widest: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className),
      clientWidth: document.documentElement.clientWidth,
    };
  });
}

async function waitFor(page, fn, arg, seconds) {
  await page.waitForFunction(fn, { timeout: seconds * 1000, polling: 100 }, arg);
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage();
  const console_messages = [];
  page.on('console', (m) => console_messages.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => console_messages.push('pageerror: ' + e.message));
  page.on('dialog', async (d) => { console_messages.push('dialog: ' + d.message()); await d.dismiss(); });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, ...args] = line.split(' ');
    try {
      if (cmd === 'goto') {
        if (args[1]) await page.setViewport({ width: Number(args[1]), height: Number(args[2]) });
        const resp = await page.goto(args[0], { waitUntil: 'load' });
        await page.evaluate(() => { window.__ppMarker = Math.random().toString(36).slice(2); });
        await waitFor(page, () => Number(document.body.getAttribute('data-refreshes') || 0) >= 1, null, 30);
        reply({ ok: true, status: resp.status(), headers: resp.headers(), state: await pageState(page) });
      } else if (cmd === 'state') {
        reply({ ok: true, state: await pageState(page), console: console_messages.splice(0) });
      } else if (cmd === 'set') {
        const before = await page.evaluate(() => Number(document.body.getAttribute('data-answer-loads') || 0));
        await page.evaluate((id, value) => {
          const e = document.getElementById(id);
          e.value = value;
          e.dispatchEvent(new Event('change', { bubbles: true }));
        }, args[0], args[1]);
        await waitFor(page, (b) => Number(document.body.getAttribute('data-answer-loads') || 0) > b, before, 30);
        reply({ ok: true, state: await pageState(page) });
      } else if (cmd === 'wait-text') {
        const seconds = Number(args.pop());
        await waitFor(page, (t) => document.body.innerText.includes(t), args.join(' '), seconds);
        reply({ ok: true, state: await pageState(page) });
      } else if (cmd === 'wait-state') {
        await waitFor(page, (s) => document.getElementById('live').getAttribute('data-state') === s, args[0], Number(args[1]));
        reply({ ok: true, state: await pageState(page) });
      } else if (cmd === 'screenshot') {
        if (args[1]) await page.setViewport({ width: Number(args[1]), height: Number(args[2]) });
        await new Promise((r) => setTimeout(r, 500));
        await page.screenshot({ path: args[0], fullPage: true });
        reply({ ok: true });
      } else if (cmd === 'quit') {
        reply({ ok: true });
        break;
      } else {
        reply({ ok: false, error: 'unknown command ' + cmd });
      }
    } catch (e) {
      let state = null;
      try { state = await pageState(page); } catch (e2) { /* page gone */ }
      reply({ ok: false, error: String(e && e.message || e), state: state, console: console_messages.splice(0) });
    }
  }
  rl.close();
  await browser.close();
  process.exit(0);
}

main().catch((e) => { reply({ ok: false, error: String(e && e.stack || e) }); process.exit(1); });
