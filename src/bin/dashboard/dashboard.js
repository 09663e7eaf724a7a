/*
 * pinpipe-dashboard's page: reads the JSON API every --refresh seconds and
 * draws the pipeline and the nine answers. Every value from the database is
 * put into the document as text (textContent) or drawn on a canvas, never
 * parsed as HTML.
 */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const PALETTE = ['#c8232c', '#2b6cb0', '#2f855a', '#b7791f', '#6b46c1', '#0987a0', '#d53f8c',
    '#4a5568', '#dd6b20', '#38a169', '#805ad5', '#e53e3e', '#3182ce', '#718096'];
  const TOPIC_COLOR = { pin: '#c8232c', geo: '#2b6cb0', user: '#2f855a' };

  const ANSWERS = [
    { fn: 'popular_category_by_country', title: 'Most popular category per country', kind: 'top',
      label: (r) => r.country + ' · ' + r.category, value: 'category_count', search: true },
    { fn: 'category_count_by_year', title: 'Posts per category per year', kind: 'stacked',
      years: 'post', x: 'post_year', series: 'category', value: 'category_count' },
    { fn: 'most_followed_by_country', title: 'Most followed poster per country', kind: 'top',
      label: (r) => r.country + ' · ' + (r.poster_name === null ? '?' : r.poster_name),
      value: 'follower_count', search: true },
    { fn: 'most_followed_country', title: 'The most followed country', kind: 'bar', big: true,
      label: (r) => r.country, value: 'follower_count' },
    { fn: 'popular_category_by_age_group', title: 'Most popular category per age group', kind: 'bar',
      label: (r) => r.age_group + ' · ' + r.category, value: 'category_count' },
    { fn: 'median_followers_by_age_group', title: 'Median follower count per age group', kind: 'bar',
      method: true, label: (r) => r.age_group, value: 'median_follower_count' },
    { fn: 'users_joined_by_year', title: 'Users joined per year', kind: 'line', years: 'join',
      label: (r) => String(r.post_year), value: 'number_users_joined' },
    { fn: 'median_followers_by_join_year', title: 'Median follower count by joining year', kind: 'line',
      years: 'join', method: true, label: (r) => String(r.post_year), value: 'median_follower_count' },
    { fn: 'median_followers_by_age_group_and_join_year',
      title: 'Median follower count by age group and joining year', kind: 'grouped', years: 'join',
      method: true, x: 'post_year', series: 'age_group', value: 'median_follower_count' },
  ];
  const CONTROL_DEFAULTS = { post_from: '2018', post_to: '2022', join_from: '2015', join_to: '2020', method: 'exact' };

  let config = { refresh: 5, allow_control: false };
  const charts = {};
  const answerData = {};
  let refreshes = 0;
  let timer = null;
  let problem = null;

  /* ---- helpers ---- */

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  function fmt(v, plain) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'number' && !plain) return v.toLocaleString('en-US', { maximumFractionDigits: 6 });
    return String(v);
  }

  // chart labels: long names (some countries, posters) cut to fit a phone
  function shortLabel(s) {
    s = String(s);
    return s.length > 28 ? s.slice(0, 27) + '…' : s;
  }

  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString('sv-SE', { hour12: false });
  }

  async function getJSON(url, options) {
    const r = await fetch(url, Object.assign({ cache: 'no-store', credentials: 'same-origin' }, options || {}));
    let body;
    try {
      body = await r.json();
    } catch (e) {
      body = { error: 'HTTP ' + r.status };
    }
    if (!r.ok) {
      const err = new Error(body.error || ('HTTP ' + r.status));
      err.status = r.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  function fillTable(table, rows, cells) {
    const tbody = table.tBodies[0];
    const fresh = document.createElement('tbody');
    if (rows.length === 0) {
      const cols = table.tHead.rows[0].cells.length;
      fresh.append(el('tr', { class: 'empty' }, el('td', { colSpan: cols, text: 'none' })));
    }
    for (const r of rows) {
      const tr = document.createElement('tr');
      for (const c of cells(r)) tr.append(c);
      fresh.append(tr);
    }
    table.replaceChild(fresh, tbody);
    table.setAttribute('data-rows', String(rows.length));
  }

  function cell(v, cls, plain) {
    const td = el('td', { text: fmt(v, plain) });
    if (cls) td.className = cls;
    else if (typeof v === 'number') td.className = 'num';
    if (v !== null && v !== undefined) td.setAttribute('data-value', String(v));
    return td;
  }

  function setChart(id, type, labels, datasets, options) {
    const canvas = $(id);
    if (!canvas || typeof Chart === 'undefined') return;
    if (!charts[id]) {
      charts[id] = new Chart(canvas, {
        type: type,
        data: { labels: labels, datasets: datasets },
        options: Object.assign({
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: { legend: { display: datasets.length > 1, position: 'bottom', labels: { boxWidth: 12 } } },
        }, options || {}),
      });
    } else {
      const chart = charts[id];
      chart.data.labels = labels;
      chart.data.datasets = datasets;
      chart.options.plugins.legend.display = datasets.length > 1;
      chart.update('none');
    }
    let points = 0;
    for (const d of datasets) points += d.data.filter((x) => x !== null && x !== undefined).length;
    canvas.setAttribute('data-points', String(points));
    canvas.setAttribute('data-rendered', 'true');
  }

  /* ---- the problem banner ---- */

  function showProblem(err) {
    const body = (err && err.body) || {};
    let state = 'stale';
    let title = body.error || (err && err.message) || 'the dashboard cannot be reached';
    if (err && err.status === 503) state = 'down';
    else if (err && (err.status === 403 || err.status === 401)) state = 'denied';
    else if (!err || !err.status) { state = 'down'; title = 'the dashboard server cannot be reached'; }
    if (state === 'down' && err && err.status === 503 && body.error === 'the database is unreachable')
      title = 'The database is unreachable; the figures below are from the last successful read';
    problem = state;
    $('banner').hidden = false;
    $('banner-title').textContent = title;
    $('banner-detail').textContent = body.detail || '';
    $('banner-hint').textContent = body.hint || '';
    $('live').setAttribute('data-state', state);
    $('live').textContent = state === 'down' ? 'database down' : state === 'denied' ? 'permission denied' : 'stale';
    document.body.classList.add('stale');
    document.body.setAttribute('data-problem', state);
  }

  function clearProblem() {
    problem = null;
    $('banner').hidden = true;
    $('live').setAttribute('data-state', 'live');
    $('live').textContent = 'live';
    document.body.classList.remove('stale');
    document.body.removeAttribute('data-problem');
  }

  /* ---- pipeline ---- */

  function renderStatus(s) {
    let rate = 0, messages = 0, lag = 0, lagKnown = false;
    for (const w of s.workers) {
      rate += w.messages_per_second || 0;
      messages += w.messages || 0;
      if (w.lag !== null) { lag += w.lag; lagKnown = true; }
    }
    $('kpi-rate').textContent = fmt(Math.round(rate * 10) / 10);
    $('kpi-messages').textContent = fmt(messages);
    $('kpi-lag').textContent = lagKnown ? fmt(lag) : '–';
    $('kpi-dead').textContent = fmt(s.dead_letters.total);
    $('kpi-lost').textContent = fmt(s.offset_gaps.total);
    fillTable($('workers'), s.workers, (w) => {
      const state = cell(w.state, 'state-' + String(w.state || '').split(/[ :]/)[0]);
      return [cell(w.topic || w.kind, ' '), cell(w.worker), state,
        cell(Math.round((w.messages_per_second || 0) * 10) / 10), cell(w.messages), cell(w.lag),
        cell(w.dead_letters), cell(w.batches), cell(fmtTime(w.last_batch_at), ' '),
        cell(w.last_error ? w.last_error + (w.last_error_at ? ' (' + fmtTime(w.last_error_at) + ')' : '') : '', 'err')];
    });
    $('dead-total').textContent = '(' + fmt(s.dead_letters.total) + ' in all)';
    fillTable($('dead-letters'), s.dead_letters.latest, (d) => [cell(fmtTime(d.received_at), ' '), cell(d.topic, ' '),
      cell(d.kafka_partition), cell(d.kafka_offset), cell(d.error, 'err'),
      cell((d.preview || '') + (d.bytes > 160 ? ' …(' + d.bytes + ' bytes)' : ''), 'preview')]);
    $('gaps-total').textContent = '(' + fmt(s.offset_gaps.total) + ' messages lost in all)';
    fillTable($('offset-gaps'), s.offset_gaps.latest, (g) => [cell(fmtTime(g.detected_at), ' '), cell(g.topic, ' '),
      cell(g.kafka_partition), cell(g.lost_messages), cell(g.reason, ' ')]);
    $('read-at').textContent = 'data read at ' + fmtTime(s.read_at);
    $('read-at').setAttribute('data-read-at', s.read_at);
  }

  function topicName(t) {
    const i = t.lastIndexOf('.');
    return i >= 0 ? t.slice(i + 1) : t;
  }

  function renderHistory(id, h, type) {
    const step = h.step * 60000;
    const end = Math.floor(Date.parse(h.read_at) / step) * step;
    const n = Math.ceil(h.minutes / h.step) + 1;
    const labels = [];
    const index = new Map();
    for (let i = 0; i < n; i++) {
      const t = end - (n - 1 - i) * step;
      index.set(t, i);
      labels.push(new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', hour12: false }));
    }
    const byTopic = new Map();
    for (const r of h.rows) {
      const i = index.get(Date.parse(r.minute));
      if (i === undefined) continue;
      if (!byTopic.has(r.topic)) byTopic.set(r.topic, new Array(n).fill(0));
      byTopic.get(r.topic)[i] += r.messages;
    }
    const datasets = [...byTopic.entries()].sort().map(([topic, data], k) => {
      const color = TOPIC_COLOR[topicName(topic)] || PALETTE[k % PALETTE.length];
      return { label: topic, data: data, borderColor: color, backgroundColor: color + (type === 'bar' ? 'cc' : '33'),
        fill: type !== 'bar', pointRadius: 0, tension: 0.25, borderWidth: type === 'bar' ? 0 : 2 };
    });
    const stacked = type === 'bar';
    setChart(id, type, labels, datasets, {
      scales: { x: { stacked: stacked, ticks: { maxTicksLimit: 8, autoSkip: true } }, y: { stacked: stacked, beginAtZero: true } },
      interaction: { mode: 'index', intersect: false },
    });
    $(id).setAttribute('data-history-rows', String(h.rows.length));
  }

  async function loadPipeline() {
    const [s, hour, day] = await Promise.all([
      getJSON('/api/status'),
      getJSON('/api/history?minutes=60'),
      getJSON('/api/history?minutes=1440&step=15'),
    ]);
    renderStatus(s);
    renderHistory('chart-hour', hour, 'line');
    renderHistory('chart-day', day, 'bar');
    return s;
  }

  /* ---- the answers ---- */

  function controls() {
    const v = {};
    for (const k of Object.keys(CONTROL_DEFAULTS)) v[k] = $(k).value;
    return v;
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    for (const [k, d] of Object.entries(CONTROL_DEFAULTS)) $(k).value = p.has(k) ? p.get(k) : d;
  }

  function writeHash() {
    const p = new URLSearchParams();
    const v = controls();
    for (const [k, d] of Object.entries(CONTROL_DEFAULTS)) if (v[k] !== d) p.set(k, v[k]);
    const h = p.toString();
    history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }

  function answerURL(a) {
    const v = controls();
    const p = new URLSearchParams();
    if (a.years) {
      if (v[a.years + '_from'] !== '') p.set('from_year', v[a.years + '_from']);
      if (v[a.years + '_to'] !== '') p.set('to_year', v[a.years + '_to']);
    }
    if (a.method) p.set('method', v.method);
    const q = p.toString();
    return '/api/answers/' + a.fn + (q ? '?' + q : '');
  }

  function buildCards() {
    const box = $('answer-cards');
    for (const [i, a] of ANSWERS.entries()) {
      const card = el('article', { class: 'card answer', id: 'card-' + a.fn, 'data-function': a.fn });
      card.append(el('h3', { text: (i + 1) + '. ' + a.title }));
      card.append(el('code', { class: 'fn', text: 'pinpipe.' + a.fn + '()' }));
      card.append(el('p', { class: 'error', id: 'error-' + a.fn }));
      if (a.big) card.append(el('p', { class: 'big', id: 'big-' + a.fn }));
      const tableBox = el('div');
      if (a.search) {
        const search = el('input', { type: 'search', placeholder: 'search', id: 'search-' + a.fn, 'aria-label': 'search ' + a.title });
        const top = el('select', { id: 'top-' + a.fn, 'aria-label': 'top N in the chart' });
        for (const n of [10, 20, 50]) top.append(el('option', { value: String(n), text: 'chart: top ' + n }));
        search.addEventListener('input', () => renderAnswer(a));
        top.addEventListener('change', () => renderAnswer(a));
        tableBox.append(el('div', { class: 'tools' }, search, top));
      }
      const table = el('table', { class: 'data', id: 'table-' + a.fn });
      table.append(el('thead'), el('tbody'));
      tableBox.append(el('div', { class: 'scroll' }, table));
      const chart = el('div', { class: 'chart' }, el('canvas', { id: 'chart-' + a.fn, role: 'img', 'aria-label': a.title }));
      card.append(el('div', { class: 'body' }, chart, tableBox));
      box.append(card);
    }
  }

  function renderAnswer(a) {
    const d = answerData[a.fn];
    if (!d) return;
    const table = $('table-' + a.fn);
    const head = el('tr');
    const numeric = new Set();
    for (const c of d.columns) {
      if (d.rows.some((r) => typeof r[c] === 'number')) numeric.add(c);
      head.append(el('th', { text: c, class: numeric.has(c) ? 'num' : '' }));
    }
    table.tHead.replaceChildren(head);
    let rows = d.rows;
    if (a.search) {
      const q = $('search-' + a.fn).value.trim().toLowerCase();
      if (q) rows = rows.filter((r) => d.columns.some((c) => String(r[c]).toLowerCase().includes(q)));
    }
    fillTable(table, rows, (r) => d.columns.map((c) => cell(r[c], numeric.has(c) ? 'num' : ' ', /year/.test(c))));
    table.setAttribute('data-total-rows', String(d.rows.length));
    $('card-' + a.fn).setAttribute('data-read-at', d.read_at);

    if (a.big) {
      $('big-' + a.fn).textContent = d.rows.length
        ? d.rows.map((r) => r.country + ': ' + fmt(r.follower_count) + ' followers').join(', ') : 'no data yet';
    }
    const id = 'chart-' + a.fn;
    if (a.kind === 'top') {
      const n = Number($('top-' + a.fn).value);
      const top = [...rows].sort((x, y) => y[a.value] - x[a.value]).slice(0, n);
      setChart(id, 'bar', top.map((r) => shortLabel(a.label(r))), [{ label: a.value, data: top.map((r) => r[a.value]), backgroundColor: PALETTE[1] }],
        { indexAxis: 'y', scales: { x: { beginAtZero: true } } });
    } else if (a.kind === 'bar' || a.kind === 'line') {
      setChart(id, a.kind, d.rows.map((r) => shortLabel(a.label(r))), [{
        label: a.value, data: d.rows.map((r) => r[a.value]), backgroundColor: PALETTE[0] + 'cc', borderColor: PALETTE[0],
        fill: false, tension: 0.2,
      }], { scales: { y: { beginAtZero: true } } });
    } else {
      const xs = [...new Set(d.rows.map((r) => r[a.x]))];
      const series = [...new Set(d.rows.map((r) => r[a.series]))];
      const datasets = series.map((s, k) => ({
        label: String(s), backgroundColor: PALETTE[k % PALETTE.length],
        data: xs.map((x) => { const r = d.rows.find((r) => r[a.x] === x && r[a.series] === s); return r ? r[a.value] : null; }),
      }));
      const stacked = a.kind === 'stacked';
      setChart(id, 'bar', xs.map(String), datasets, { scales: { x: { stacked: stacked }, y: { stacked: stacked, beginAtZero: true } } });
    }
  }

  async function loadAnswer(a) {
    try {
      answerData[a.fn] = await getJSON(answerURL(a));
      $('error-' + a.fn).textContent = '';
      renderAnswer(a);
    } catch (err) {
      const b = err.body || {};
      $('error-' + a.fn).textContent = (b.error || err.message) + (b.hint ? ' ' + b.hint : '');
      if (err.status !== 400) throw err;
    }
  }

  let answerLoads = 0;
  async function loadAnswers() {
    const results = await Promise.allSettled(ANSWERS.map(loadAnswer));
    answerLoads++;
    document.body.setAttribute('data-answer-loads', String(answerLoads));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /* ---- the refresh loop ---- */

  async function refresh() {
    clearTimeout(timer);
    const results = await Promise.allSettled([loadPipeline(), loadAnswers()]);
    const failed = results.map((r) => r.status === 'rejected' ? r.reason : null).filter(Boolean)
      .sort((x, y) => (y.status === 403) - (x.status === 403));
    if (failed.length) showProblem(failed[0]);
    else clearProblem();
    refreshes++;
    document.body.setAttribute('data-refreshes', String(refreshes));
    timer = setTimeout(refresh, config.refresh * 1000);
  }

  async function control(action) {
    try {
      await getJSON('/api/' + action, { method: 'POST', headers: { 'X-Pinpipe-Control': '1' } });
      refresh();
    } catch (err) {
      showProblem(err);
    }
  }

  async function start() {
    buildCards();
    readHash();
    try {
      config = await getJSON('/api/config');
    } catch (err) {
      showProblem(err);
    }
    $('refresh-note').textContent = 'updates every ' + config.refresh + ' s';
    if (config.allow_control) {
      $('control').hidden = false;
      $('pause').addEventListener('click', () => control('pause'));
      $('resume').addEventListener('click', () => control('resume'));
    }
    $('controls').addEventListener('submit', (e) => e.preventDefault());
    $('controls').addEventListener('change', () => {
      writeHash();
      loadAnswers().then(clearProblem, showProblem);
    });
    window.addEventListener('hashchange', () => { readHash(); loadAnswers().then(clearProblem, showProblem); });
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
