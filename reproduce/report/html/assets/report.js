// The TGDPO report page: plain JavaScript, no library, no network. window.REPORT (inline in report.html)
// holds the first screen; the drill-down's data scripts (report_files/data/*.js: an index per benchmark and
// setting, the long texts in chunks of about 1 MB) are added on demand and register themselves in window.REPORT_DATA. Every text from a file is inserted as text, never as markup,
// except the HTML the report stage rendered from our own Markdown tables (already escaped there).
"use strict";
(function () {
  const R = window.REPORT;
  window.REPORT_DATA = window.REPORT_DATA || {};
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : String(k));
    return e;
  }
  const fmt = (x, nd) => (x === null || x === undefined ? "—" : Number(x).toFixed(nd === undefined ? 1 : nd));

  // ------------------------------------------------------------------ data scripts, loaded on demand
  const pending = {};
  function loadData(key) {
    if (window.REPORT_DATA[key]) return Promise.resolve(window.REPORT_DATA[key]);
    if (!pending[key]) {
      pending[key] = new Promise((resolve, reject) => {
        const s = el("script", { src: `${R.files_dir}/data/${key}.js` });
        s.onload = () => (window.REPORT_DATA[key] ? resolve(window.REPORT_DATA[key]) : reject(new Error(`${key}.js registered nothing`)));
        s.onerror = () => reject(new Error(`could not load ${R.files_dir}/data/${key}.js`));
        document.head.append(s);
      });
    }
    return pending[key];
  }

  // ------------------------------------------------------------------ Table 1
  let tableJudge = R.table_judge;
  function renderTable1() {
    const tabs = $("table1-judges");
    tabs.replaceChildren(...R.judges.map((j) => el("button", {
      class: j === tableJudge ? "on" : "", "data-judge": j,
      onclick: () => { tableJudge = j; renderTable1(); } }, j + (j === R.table_judge ? " (table judge)" : ""))));
    const t = R.tables[tableJudge];
    const head = el("tr", {}, el("th", { text: "setting" }), el("th", { text: "method" }),
      R.columns.map((c) => el("th", { title: c.header }, c.key, el("div", { class: "sub", text: c.header }))));
    const rows = t.rows.map((r) => el("tr", {}, el("td", { text: r.setting }), el("td", { text: r.method }),
      R.columns.map((c) => {
        const cell = r.cells[c.key];
        const cls = ["cell", cell.value === null ? "empty" : "", cell.complete === false ? "incomplete" : "",
          cell.bench && cell.value !== null ? "link" : ""].join(" ");
        return el("td", {
          class: cls, "data-col": c.key, "data-setting": r.setting_key, "data-method": r.method_key,
          "data-value": cell.value === null ? "" : String(cell.value),
          title: [cell.reason, cell.source].filter(Boolean).join("\n"),
          onclick: cell.bench && cell.value !== null ? () => openItems({
            bench: cell.bench, setting: r.setting_key, judge: cell.judge, metric: cell.metric, a: r.method_key, b: "" }) : null,
        }, cell.text, cell.complete === false ? el("span", { class: "badge", text: "incomplete" }) : null);
      })));
    $("table1-body").replaceChildren(
      el("table", { class: "t1", id: "table1-table" }, el("thead", {}, head), el("tbody", {}, rows)),
      el("p", { class: "note" }, `From ${t.file}. Cells: ours ±SE or [95% CI] (paper, Δ = ours − paper); `,
        "'*' and the incomplete badge: computed from fewer games than asked. Hover a cell for its full reason and provenance; ",
        "click it for the items behind it (AE-LC opens the raw win-rate items: LC has no per-item value)."));
  }

  // ------------------------------------------------------------------ method differences (forest plot)
  let diffJudge = R.table_judge;
  function renderDifferences() {
    const body = $("diff-body");
    if (!R.differences) { body.replaceChildren(el("p", { class: "slot" }, "No method_differences.json (the preset compares no methods).")); return; }
    const rows = R.differences.filter((d) => d.judge === diffJudge);
    const judges = [...new Set(R.differences.map((d) => d.judge))];
    const W = 860, rowH = 22, left = 330, right = 140, H = rows.length * rowH + 40;
    const vals = rows.flatMap((d) => [d.ci_low, d.ci_high, d.diff, d.paper_diff]).filter((x) => x !== null && x !== undefined && isFinite(x));
    let lo = vals.reduce((a, v) => Math.min(a, v), 0), hi = vals.reduce((a, v) => Math.max(a, v), 0);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
    const x = (v) => left + ((v - lo) / (hi - lo)) * (W - left - right);
    const NS = "http://www.w3.org/2000/svg";
    const s = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
    const svg = s("svg", { width: W, height: H, class: "forest", role: "img" });
    svg.append(s("line", { x1: x(0), x2: x(0), y1: 10, y2: H - 20, class: "zero" }));
    svg.append(s("text", { x: x(lo), y: H - 4, class: "axis" }, fmt(lo, 1)), s("text", { x: x(hi) - 30, y: H - 4, class: "axis" }, fmt(hi, 1)),
      s("text", { x: x(0) - 4, y: H - 4, class: "axis" }, "0"));
    rows.forEach((d, i) => {
      const y = 20 + i * rowH;
      const g = s("g", { class: "frow", "data-i": i });
      g.append(s("rect", { x: 0, y: y - rowH / 2, width: W, height: rowH, class: "hit" })); // the whole row is the click target
      g.append(s("text", { x: 4, y: y + 4, class: "lab" }, `${R.settings[d.setting] || d.setting} · ${d.metric}: ${d.method_a} − ${d.method_b}`));
      if (d.ci_low !== null && d.ci_high !== null) g.append(s("line", { x1: x(d.ci_low), x2: x(d.ci_high), y1: y, y2: y, class: "ci" }));
      if (d.diff !== null) g.append(s("circle", { cx: x(d.diff), cy: y, r: 4, class: "pt" }));
      if (d.paper_diff !== null && d.paper_diff !== undefined) g.append(s("text", { x: x(d.paper_diff) - 4, y: y + 4, class: "paper" }, "×"));
      g.append(s("text", { x: W - right + 8, y: y + 4, class: "lab" }, `${fmt(d.diff, 2)} [${fmt(d.ci_low, 2)}, ${fmt(d.ci_high, 2)}]`));
      g.append(s("title", {}, `${d.finding || d.verdict || ""}\np = ${d.p_value} (${d.p_method}), ${d.n_prompts} prompts. Click: the items.`));
      g.addEventListener("click", () => openItems({ bench: d.benchmark, setting: d.setting, judge: d.judge, metric: d.metric, a: d.method_a, b: d.method_b, filter: "" }));
      svg.append(g);
    });
    const table = el("table", { class: "md" }, el("thead", {}, el("tr", {}, ["setting", "benchmark", "metric", "A − B", "diff [95% CI]", "p", "paper", "verdict"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows.map((d) => el("tr", { class: "link", onclick: () => openItems({ bench: d.benchmark, setting: d.setting, judge: d.judge, metric: d.metric, a: d.method_a, b: d.method_b }) },
        el("td", { text: d.setting_label || d.setting }), el("td", { text: d.benchmark }), el("td", { text: d.metric }),
        el("td", { text: `${d.method_a} − ${d.method_b}` }), el("td", { text: `${fmt(d.diff, 2)} [${fmt(d.ci_low, 2)}, ${fmt(d.ci_high, 2)}]` }),
        el("td", { text: d.p_value === null ? "—" : Number(d.p_value).toPrecision(2) }), el("td", { text: fmt(d.paper_diff, 2) }),
        el("td", { text: d.verdict || "" })))));
    body.replaceChildren(
      el("div", { class: "tabs" }, judges.map((j) => el("button", { class: j === diffJudge ? "on" : "", onclick: () => { diffJudge = j; renderDifferences(); } }, j))),
      el("p", { class: "note", text: "Paired bootstrap 95% CIs over prompts; × marks the paper's gap. Click a row for the prompts behind it." }),
      svg, table);
  }

  // ------------------------------------------------------------------ agreement, figures, slots
  function html(target, text, missing) {
    const d = $(target);
    if (text) d.innerHTML = text; // rendered and escaped by the report stage (reproduce/report/html/markdown.py)
    else d.replaceChildren(el("p", { class: "slot", text: missing }));
  }
  function renderStatic() {
    html("agreement-body", R.agreement_html, "No judge_agreement.md (the preset has one judge).");
    html("power-body", R.power_html, "No power.md (the preset compares no methods).");
    $("figures-body").replaceChildren(...R.figures.map((f) => el("figure", {},
      el("img", { src: f.src, alt: f.caption, loading: "lazy" }), el("figcaption", {}, el("b", { text: f.name + ": " }), f.caption))));
    $("slots-body").replaceChildren(...R.slots.map((s) => el("div", { class: "slotbox", "data-slot": s.name },
      el("h3", { text: s.name }),
      s.files.length ? s.files.map((f) => {
        const box = el("div", {}, el("div", { class: "file", text: f.file }));
        if (f.html) { const d = el("div"); d.innerHTML = f.html; box.append(d); } else if (f.text !== null) box.append(el("pre", { text: f.text }));
        return box;
      }) : el("p", { class: "slot", text: `Not built yet: run \`${s.command}\`; its files appear here when they exist.` }))));
  }

  // ------------------------------------------------------------------ items explorer
  const S = { bench: null, setting: null, judge: null, metric: null, a: "", b: "", cat: "", filter: "", q: "", sort: "id", shown: 200, item: null };
  let current = null; // loaded item data of (bench, setting)

  function openItems(opts) {
    Object.assign(S, { cat: "", filter: "", q: "", sort: opts.b ? "dvalue" : "id", shown: 200, item: null }, opts);
    showItems();
    $("items").scrollIntoView();
  }

  const tokens = (a) => (a && Array.isArray(a.n) && a.n.length && a.n.every((x) => typeof x === "number") ? a.n.reduce((s, x) => s + x, 0) : null);
  // lengths of A and of B (or of the baseline): in tokens when both have a token count, else both in characters
  function lens(it) {
    const a = it.ans[S.a], b = S.b ? it.ans[S.b] : { n: it.ref_len, chars: it.ref_chars };
    const ta = tokens(a), tb = tokens(b);
    if (ta !== null && tb !== null) return [ta, tb, "tokens"];
    return [a ? a.chars : null, b ? b.chars : null, "chars"];
  }
  function val(item, judge, m, metric) {
    const v = item.v[judge] && item.v[judge][m];
    return v && v.m ? (v.m[metric] === undefined ? null : v.m[metric]) : null;
  }
  function judgesDisagree(item, m, metric) {
    const vs = current.judges.map((j) => val(item, j, m, metric)).filter((x) => x !== null);
    return new Set(vs).size > 1;
  }
  function flipped(item, judge, m) {
    const v = item.v[judge] && item.v[judge][m];
    return !!(v && /position flip/.test(v.flip));
  }

  function controls() {
    const benches = Object.keys(R.benchmarks), settings = Object.keys(R.settings);
    const sel = (name, options, value, label) => el("label", {}, label + " ",
      el("select", { id: `sel-${name}`, onchange: (e) => { S[name] = e.target.value; S.shown = 200; S.item = null; if (name === "bench" || name === "setting") showItems(); else renderList(); } },
        options.map(([v, t]) => el("option", { value: v, selected: v === value ? "selected" : null, text: t }))));
    const metrics = current ? current.metrics : [];
    const mopts = R.methods.map((m) => [m, m]);
    const cats = current ? [...new Set(current.items.map((i) => i.cat))].sort() : [];
    $("items-controls").replaceChildren(
      sel("bench", benches.map((b) => [b, b]), S.bench, "benchmark"), sel("setting", settings.map((s) => [s, R.settings[s]]), S.setting, "setting"),
      sel("judge", R.judges.map((j) => [j, j]), S.judge, "judge"), sel("metric", metrics.map((m) => [m, m]), S.metric, "metric"),
      sel("a", mopts, S.a, "method A"), sel("b", [["", "—"], ...mopts], S.b, "method B"),
      sel("cat", [["", "all categories"], ...cats.map((c) => [c, c])], S.cat, "category"),
      sel("filter", [["", "all items"], ["a_wins", "A beats B"], ["b_wins", "B beats A"], ["tie", "A and B equal"],
        ["disagree", "judges disagree (on A)"], ["flip", "position flip (A, this judge)"], ["failed", "no verdict (A)"]], S.filter, "show"),
      sel("sort", [["id", "question order"], ["dvalue", "A − B value (largest first)"], ["dlen", "length A − B (largest first)"],
        ["dlen_abs", "|length A − B|"], ["value", "A's value"]], S.sort, "sort"),
      el("label", {}, "search ", el("input", { id: "sel-q", type: "search", value: S.q, oninput: (e) => { S.q = e.target.value; S.shown = 200; renderList(); } })));
  }

  function showItems() {
    S.bench = S.bench || Object.keys(R.benchmarks)[0];
    S.setting = S.setting || Object.keys(R.settings)[0];
    S.judge = S.judge || R.table_judge;
    S.a = S.a || R.methods[R.methods.length - 1];
    const entry = R.items[`${S.bench}/${S.setting}`];
    $("items-status").textContent = `loading ${entry.key}.js (${(entry.bytes / 1e6).toFixed(1)} MB, ${entry.n_items} items)…`;
    current = null;
    controls();
    loadData(entry.key).then((data) => {
      if (S.bench !== data.bench || S.setting !== data.setting) return; // the reader moved on meanwhile
      current = data;
      if (!data.metrics.includes(S.metric)) S.metric = data.metrics[0];
      controls();
      renderList();
      if (S.item) renderDetail(S.item);
    }).catch((e) => { $("items-status").textContent = String(e); });
  }

  function filtered() {
    const d = current, { a, b, judge, metric } = S, q = S.q.toLowerCase();
    let rows = d.items.filter((it) => {
      if (S.cat && it.cat !== S.cat) return false;
      if (q && !(it.id.toLowerCase().includes(q) || it.q.some((t) => t.toLowerCase().includes(q)))) return false;
      const va = val(it, judge, a, metric), vb = b ? val(it, judge, b, metric) : null;
      switch (S.filter) {
        case "a_wins": return va !== null && vb !== null && va > vb;
        case "b_wins": return va !== null && vb !== null && vb > va;
        case "tie": return va !== null && vb !== null && va === vb;
        case "disagree": return judgesDisagree(it, a, metric);
        case "flip": return flipped(it, judge, a);
        case "failed": return va === null;
        default: return true;
      }
    });
    const dv = (it) => { const va = val(it, judge, a, metric), vb = b ? val(it, judge, b, metric) : 0; return va === null || vb === null ? -Infinity : va - vb; };
    const dl = (it) => { const [la, lb] = lens(it); return la === null || lb === null ? -Infinity : la - lb; };
    const key = { dvalue: dv, dlen: dl, dlen_abs: (it) => Math.abs(dl(it)), value: (it) => { const v = val(it, judge, a, metric); return v === null ? -Infinity : v; } }[S.sort];
    if (key) rows = rows.map((it) => [key(it), it]).sort((x, y) => y[0] - x[0]).map((x) => x[1]);
    return rows;
  }

  function renderList() {
    if (!current) return;
    const rows = filtered(), { a, b, judge, metric } = S;
    const miss = current.missing.length ? ` Missing: ${current.missing.join("; ")}.` : "";
    const qerr = current.questions_error ? ` Question texts unavailable (${current.questions_error}).` : "";
    $("items-status").textContent = `${rows.length} of ${current.items.length} items · ${current.bench} / ${R.settings[current.setting]} · judge ${judge} · ${metric} per item (the table's value is their ${metric === "AH" ? "weighted " : ""}mean).${miss}${qerr}`;
    const unit = rows.length ? lens(rows[0])[2] : "tokens";
    const head = el("tr", {}, ["id", "category", "question", `${a}`, b ? `${b}` : null, b ? "A − B" : null, `${unit} ${a}`, `${unit} ${b || "baseline"}`, "judges"]
      .filter((h) => h !== null).map((h) => el("th", { text: h })));
    const body = rows.slice(0, S.shown).map((it) => {
      const va = val(it, judge, a, metric), vb = b ? val(it, judge, b, metric) : null;
      const cls = b && va !== null && vb !== null ? (va > vb ? "awin" : va < vb ? "bwin" : "") : "";
      return el("tr", { class: `link ${cls} ${S.item === it.id ? "sel" : ""}`, "data-id": it.id, onclick: () => { S.item = it.id; renderDetail(it.id); renderList(); } },
        el("td", { text: it.id }), el("td", { text: it.cat }), el("td", { class: "qcell", text: (it.q[0] || "").slice(0, 90) }),
        el("td", { text: fmt(va, 2) }), b ? el("td", { text: fmt(vb, 2) }) : null, b ? el("td", { text: va === null || vb === null ? "—" : fmt(va - vb, 2) }) : null,
        el("td", { text: fmt(lens(it)[0], 0) }), el("td", { text: fmt(lens(it)[1], 0) }),
        el("td", { text: judgesDisagree(it, a, metric) ? "disagree" : "" }));
    });
    const more = rows.length > S.shown ? el("button", { onclick: () => { S.shown += 500; renderList(); } }, `show ${Math.min(500, rows.length - S.shown)} more`) : null;
    $("items-list").replaceChildren(el("table", { class: "items", id: "items-table" }, el("thead", {}, head), el("tbody", {}, body)), more);
  }

  function turns(label, ts, meta) {
    return el("div", { class: "answer" }, el("div", { class: "who" }, label, meta ? el("span", { class: "sub", text: " " + meta }) : null),
      ts.length ? ts.map((t, i) => el("div", {}, ts.length > 1 ? el("div", { class: "sub", text: `turn ${i + 1}` }) : null, el("pre", { text: t.trim() ? t : `(whitespace only) ${JSON.stringify(t)}` }))) : el("p", { class: "slot", text: "(none)" }));
  }

  function logprobs(lp) {
    const rows = Object.entries(lp).sort((x, y) => y[1] - x[1]);
    return el("table", { class: "lp" }, el("tr", {}, el("th", { text: "token" }), el("th", { text: "log-prob" }), el("th", { text: "p" })),
      rows.map(([t, v]) => el("tr", {}, el("td", {}, el("code", { text: JSON.stringify(t) })), el("td", { text: fmt(v, 3) }), el("td", { text: fmt(Math.exp(v), 3) }))));
  }

  // the item's long texts live in a chunk script (about 1 MB of consecutive items): load it, then draw
  function renderDetail(id) {
    const it = current.items.find((x) => x.id === id);
    if (!it) return;
    $("item-detail").replaceChildren(el("p", { class: "status", text: `loading ${it.chunk}.js…` }));
    loadData(it.chunk).then((chunk) => { if (S.item === id) drawDetail(it, chunk[id]); })
      .catch((e) => { $("item-detail").replaceChildren(el("p", { text: String(e) })); });
  }

  function drawDetail(it, tx) {
    const order = [S.a, S.b, ...current.methods.filter((m) => m !== S.a && m !== S.b)].filter(Boolean);
    const size = (m) => { const a = it.ans[m]; return a ? `${Array.isArray(a.n) ? a.n.join("+") + " tokens, " : ""}${a.chars} chars` : "no answer"; };
    const verdicts = current.judges.flatMap((j) => order.map((m) => {
      const v = it.v[j] && it.v[j][m];
      if (!v) return el("div", { class: "verdict missing", "data-judge": j, "data-method": m, text: `${j} · ${m}: no judgment` });
      return el("details", { class: "verdict", "data-judge": j, "data-method": m, open: j === S.judge && (m === S.a || m === S.b) ? "open" : null },
        el("summary", {}, el("b", { text: `${j} · ${m}: ` }), el("span", { class: "vsum", text: v.sum }),
          el("span", { class: "sub", text: ` · ${Object.entries(v.m).map(([k, x]) => `${k} ${fmt(x, 2)}`).join(", ")} · ${v.flip}` })),
        tx.games[j][m].map((g) => el("div", { class: "game" },
          el("div", {}, el("b", { text: g.name }), el("span", { class: "sub", text: ` (${g.order})` }), " → ", el("span", { class: "gverdict", text: g.verdict })),
          g.text ? el("pre", { class: "judgment", text: g.text }) : null,
          g.logprobs ? logprobs(g.logprobs) : null)));
    }));
    $("item-detail").replaceChildren(el("div", { class: "detail", "data-id": it.id },
      el("h3", { text: `${current.bench} · ${it.id}${it.cat ? " · " + it.cat : ""}` }),
      turns("Question", it.q), turns(`Baseline${current.baseline ? " (" + current.baseline + ")" : ""}`, tx.ref,
        Array.isArray(it.ref_len) ? `${it.ref_len.join("+")} tokens, ${it.ref_chars} chars` : `${it.ref_chars} chars`),
      el("h4", { text: "Verdicts" }), verdicts,
      el("h4", { text: "Answers" }), order.map((m) => turns(m, tx.ans[m] || [], size(m)))));
  }

  // ------------------------------------------------------------------ token rewards
  const T = { setting: null, i: 0, q: "" };
  function renderTokens() {
    T.setting = T.setting || Object.keys(R.settings)[0];
    const entry = R.tokens[T.setting];
    const body = $("tokens-body");
    const ctl = [el("label", {}, "setting ", el("select", { onchange: (e) => { T.setting = e.target.value; T.i = 0; renderTokens(); } },
      Object.keys(R.settings).map((s) => el("option", { value: s, selected: s === T.setting ? "selected" : null, text: R.settings[s] }))))];
    if (!entry.key) { $("tokens-controls").replaceChildren(...ctl); body.replaceChildren(el("p", { class: "slot", text: `No token rewards for this setting: ${entry.reason}` })); return; }
    $("tokens-controls").replaceChildren(...ctl, el("button", { id: "tokens-load", onclick: () => loadData(entry.key).then(drawStrip).catch((e) => body.replaceChildren(el("p", { text: String(e) }))) },
      `show the strips (${entry.n_pairs} of ${entry.n_total} pairs)`));
    if (window.REPORT_DATA[entry.key]) drawStrip(window.REPORT_DATA[entry.key]);
  }
  function drawStrip(data) {
    const pairs = data.pairs, n = pairs.length;
    T.i = Math.max(0, Math.min(T.i, n - 1));
    const p = pairs[T.i];
    // a loop, not Math.max(...values): spreading ~10^5 arguments overflows the call stack (RangeError)
    let scale = 1e-9;
    for (const x of pairs) for (const side of [x.chosen.r, x.rejected.r]) for (const v of side) scale = Math.max(scale, Math.abs(v));
    const color = (r) => { const a = Math.min(1, Math.abs(r) / scale); return r >= 0 ? `rgba(33,102,172,${a})` : `rgba(178,24,43,${a})`; };
    const strip = (side, w) => el("div", { class: "strip" }, el("div", { class: "who", text: `${side} (score ${fmt(p[side].score, 2)}) — token weight 1 ${w} α·r_t` }),
      p[side].tokens.map((t, k) => el("span", { class: "tok", style: `background:${color(p[side].r[k])}`, title: `r_t = ${p[side].r[k].toFixed(4)}` }, t.replace(/\n/g, "⏎"))));
    const pick = el("div", { class: "controls" },
      el("button", { id: "pair-prev", onclick: () => { T.i -= 1; drawStrip(data); } }, "◀"),
      el("label", {}, " pair ", el("input", { id: "pair-index", type: "number", min: 1, max: n, value: T.i + 1, onchange: (e) => { T.i = Number(e.target.value) - 1; drawStrip(data); } }), ` of ${n} `),
      el("button", { id: "pair-next", onclick: () => { T.i += 1; drawStrip(data); } }, "▶"),
      el("label", {}, " find prompt ", el("input", { type: "search", value: T.q, onchange: (e) => { T.q = e.target.value; const k = pairs.findIndex((x) => x.prompt.includes(T.q)); if (k >= 0) { T.i = k; drawStrip(data); } } })));
    $("tokens-body").replaceChildren(pick,
      el("p", { class: "note", text: `r_t = β (log π_guide − log π_ref), β = ${data.beta}, α = ${data.alpha}; guide ${data.guide}, reference ${data.ref}. Blue: r_t > 0, red: r_t < 0 (hover a token for its value).` }),
      el("div", { class: "pair", "data-pair": p.pair_id }, el("div", { class: "who", text: `pair ${p.pair_id}` }), el("pre", { text: p.prompt }), strip("chosen", "+"), strip("rejected", "−")));
  }

  // ------------------------------------------------------------------ start
  renderTable1();
  renderDifferences();
  renderStatic();
  renderTokens();
  controls();
  $("items-status").textContent = "Click a Table-1 cell or a method difference, or choose a benchmark above and press load.";
  $("items-controls").append(el("button", { id: "items-load", onclick: showItems }, "load"));
})();
