// The marking page: one question across the class, one answer at a time; every change is saved when made.
"use strict";
const $ = (id) => document.getElementById(id);
const state = {question: null, items: [], answers: [], index: 0, answer: null, mark: null, pending: null,
               chain: Promise.resolve()};
// Saves go one after another: a key pressed while a save is on its way builds on the mark that save returns.
function queued(job) { state.chain = state.chain.then(job, job); return state.chain; }

async function api(method, path, body) {
  const response = await fetch(path, {method, headers: {"Content-Type": "application/json"},
                                      body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  return {status: response.status, data};
}

function typeset(el) { if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(["Typeset", MathJax.Hub, el]); }
function fmt(x) { return x === null || x === undefined ? "–" : String(Math.round(x * 1000) / 1000); }

async function loadQuestions(selected) {
  const {data} = await api("GET", "/api/questions");
  const select = $("questions");
  select.innerHTML = "";
  const shown = data.filter((q) => q.answers > 0);  // questions of sheets nobody in this class handed in stay out
  for (const q of shown.length ? shown : data) {
    const option = document.createElement("option");
    option.value = q.name;
    option.textContent = `${q.sheet} · ${q.name} (${q.marked}/${q.answers} marked)`;
    select.appendChild(option);
  }
  const wanted = selected || location.hash.slice(1).split("/")[0] || (data[0] && data[0].name);
  if (wanted) { select.value = wanted; await openQuestion(wanted); }
}

async function openQuestion(name) {
  const {data} = await api("GET", `/api/questions/${encodeURIComponent(name)}`);
  state.question = data; state.items = data.items; state.answers = data.answers;
  $("qtitle").textContent = `${data.name} — ${fmt(data.points)} points`;
  $("qtext").innerHTML = data.html; typeset($("qtext"));
  drawItems();
  const fromHash = parseInt(location.hash.split("/")[1] || "", 10);
  const at = state.answers.findIndex((a) => a.id === fromHash);
  const firstOpen = state.answers.findIndex((a) => !a.marked);
  await openAnswer(at >= 0 ? at : Math.max(firstOpen, 0));
}

function drawItems() {
  const list = $("items"); list.innerHTML = "";
  state.items.forEach((item, i) => {
    const li = document.createElement("li");
    li.dataset.id = item.id;
    const on = state.mark && state.mark.items.includes(item.id);
    li.className = on ? "on" : "";
    li.innerHTML = `<kbd>${i + 1}</kbd><span class="pts ${item.points < 0 ? "neg" : ""}">${item.points > 0 ? "+" : ""}${fmt(item.points)}</span>` +
      `<span><span class="expl"></span><small class="note"></small></span><button class="edit" tabindex="-1">edit</button>`;
    li.querySelector(".expl").textContent = item.explanation;
    li.querySelector(".note").textContent = item.note ? `Grader note: ${item.note}` : "";
    li.addEventListener("click", (e) => { if (!e.target.classList.contains("edit")) toggle(item.id); });
    li.querySelector(".edit").addEventListener("click", () => editItem(item));
    list.appendChild(li);
  });
}

function drawProgress() {
  const done = state.answers.filter((a) => a.marked).length;
  const option = [...$("questions").options].find((o) => o.value === state.question.name);
  if (option) option.textContent = option.textContent.replace(/\(\d+\/(\d+) marked\)/, `(${done}/$1 marked)`);
  $("barfill").style.width = `${state.answers.length ? 100 * done / state.answers.length : 0}%`;
  $("count").textContent = `${done} of ${state.answers.length} marked · answer ${state.index + 1} of ${state.answers.length}`;
  const strip = $("strip"); strip.innerHTML = "";
  state.answers.forEach((a, i) => {
    const link = document.createElement("a");
    link.href = `#${state.question.name}/${a.id}`; link.textContent = a.code;
    link.className = (a.marked ? "marked " : "") + (i === state.index ? "here" : "");
    link.title = a.marked ? `score ${fmt(a.score)}` : "not marked";
    link.addEventListener("click", (e) => { e.preventDefault(); go(i); });
    strip.appendChild(link);
  });
}

async function openAnswer(index) {
  if (!state.answers.length) { $("atext").innerHTML = '<p class="empty">No answers to this question.</p>'; drawProgress(); return; }
  state.index = Math.min(Math.max(index, 0), state.answers.length - 1);
  const id = state.answers[state.index].id;
  const {data} = await api("GET", `/api/answers/${id}`);
  state.answer = data;
  state.mark = data.mark && data.mark.current && !data.mark.open ? data.mark : null;
  state.version = data.mark ? data.mark.version : 0;
  history.replaceState(null, "", `#${state.question.name}/${id}`);
  $("code").textContent = data.code;
  $("state").textContent = data.mark && !data.mark.current ? "(changed since it was marked: mark it again)"
    : data.mark && data.mark.open ? "(reopened)" : "";
  $("atext").innerHTML = data.empty ? '<p class="empty">No answer written.</p>' : data.html;
  $("outputs").innerHTML = data.outputs ? `<h4>The student's own output, as the answer refers to it</h4>${data.outputs}` : "";
  typeset($("atext"));
  $("comment").value = data.mark ? data.mark.comment : "";
  $("conflict").hidden = true;
  $("saved").textContent = state.mark ? `marked by ${state.mark.by}` : "";
  drawMark(); drawProgress();
}

function drawMark() {
  drawItems();
  $("score").textContent = state.mark ? `${fmt(state.mark.score)} of ${fmt(state.question.points)}` : "not marked";
}

async function save(items, comment) {
  const id = state.answer.id;
  const {status, data} = await api("PUT", `/api/answers/${id}/mark`, {items, comment, version: state.version});
  if (status === 409) { showConflict(data.current, items, comment); return false; }
  if (status !== 200) { $("saved").textContent = `not saved: ${data.error || status}`; return false; }
  state.mark = data; state.version = data.version;
  const entry = state.answers.find((a) => a.id === id);
  if (entry && state.answer.id === id) { entry.marked = true; entry.score = data.score; }
  $("saved").textContent = `saved ✓ (${data.by})`;
  drawMark(); drawProgress();
  return true;
}

function showConflict(current, items, comment) {
  const box = $("conflict"); box.hidden = false;
  const ticked = current ? current.items.map((id) => state.items.findIndex((i) => i.id === id) + 1).join(", ") : "";
  box.innerHTML = `<strong>${current ? current.by : "Someone"} marked this answer meanwhile</strong> ` +
    `(score ${current ? fmt(current.score) : "–"}, items ${ticked || "none"}${current && current.comment ? ", comment: " : ""}<q></q>). ` +
    `Your change was not saved. <button id="theirs">Keep theirs</button> <button id="mine">Save mine over theirs</button>`;
  box.querySelector("q").textContent = current ? current.comment : "";
  $("theirs").onclick = () => openAnswer(state.index);
  $("mine").onclick = async () => { state.version = current ? current.version : 0; box.hidden = true; await save(items, comment); };
  state.version = current ? current.version : state.version;
}

function toggle(itemId) {
  return queued(async () => {
    if (!$("conflict").hidden) return;
    const items = state.mark ? [...state.mark.items] : [];
    const at = items.indexOf(itemId);
    if (at >= 0) items.splice(at, 1); else items.push(itemId);
    await save(items, $("comment").value);
  });
}

function saveComment() {
  clearTimeout(state.pending); state.pending = null;
  return queued(async () => {
    const comment = $("comment").value;
    if (!state.answer || (state.mark ? state.mark.comment : "") === comment) return;
    await save(state.mark ? state.mark.items : [], comment);
  });
}

function go(index) {
  if (state.pending) saveComment();
  return queued(() => openAnswer(index));
}

async function editItem(item) {
  const points = prompt(`Points of item "${item.explanation}"`, item.points);
  if (points === null) return;
  const explanation = prompt("What the student reads", item.explanation);
  if (explanation === null) return;
  const {status, data} = await api("PUT", `/api/items/${item.id}`, {points: parseFloat(points), explanation, note: item.note});
  if (status !== 200) { alert(data.error); return; }
  await refreshScores(data.answers);
}

async function refreshScores(answers) {
  const {data} = await api("GET", `/api/questions/${encodeURIComponent(state.question.name)}`);
  state.items = data.items; state.answers = answers || data.answers;
  const fresh = await api("GET", `/api/answers/${state.answer.id}`);
  if (fresh.data.mark && state.mark) state.mark = fresh.data.mark;
  drawMark(); drawProgress();
}

async function suggest() {
  const text = $("comment").value;
  state.pick = null;
  const {data} = await api("GET", `/api/questions/${encodeURIComponent(state.question.name)}/comments?q=${encodeURIComponent(text)}`);
  const list = $("suggest"); list.innerHTML = "";
  for (const c of data.filter((c) => c !== text)) {
    const li = document.createElement("li"); li.textContent = `↳ ${c}`; li.dataset.text = c;
    li.addEventListener("mousedown", (e) => { e.preventDefault(); $("comment").value = c; list.innerHTML = ""; saveComment(); });
    list.appendChild(li);
  }
}

document.addEventListener("keydown", async (e) => {
  const typing = e.target === $("comment") || e.target.tagName === "INPUT" || e.target.tagName === "SELECT";
  if (typing) {
    if (e.key === "Escape") e.target.blur();
    const offered = $("suggest").querySelector("li");
    if (e.target === $("comment") && offered && (e.key === "ArrowDown" || (e.key === "Enter" && state.pick))) {
      // ArrowDown picks the first comment offered, Enter takes it: comments are reused without the mouse
      e.preventDefault();
      if (e.key === "ArrowDown") { state.pick = offered.dataset.text; offered.classList.add("picked"); }
      else { $("comment").value = state.pick; state.pick = null; $("suggest").innerHTML = ""; saveComment(); }
    }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) { const item = state.items[parseInt(e.key, 10) - 1]; if (item) { e.preventDefault(); await toggle(item.id); } }
  else if (e.key === "0") { e.preventDefault(); await queued(() => save([], $("comment").value)); }
  else if (e.key === "n" || e.key === "ArrowRight") { e.preventDefault(); await go(state.index + 1); }
  else if (e.key === "p" || e.key === "ArrowLeft") { e.preventDefault(); await go(state.index - 1); }
  else if (e.key === "c") { e.preventDefault(); $("comment").focus(); }
  else if (e.key === "r" && state.answer) { e.preventDefault(); await api("POST", `/api/answers/${state.answer.id}/reopen`); await openAnswer(state.index); state.answers[state.index].marked = false; drawProgress(); }
});

$("comment").addEventListener("input", () => { clearTimeout(state.pending); state.pending = setTimeout(saveComment, 400); suggest(); });
$("comment").addEventListener("focus", suggest);
$("comment").addEventListener("blur", () => { $("suggest").innerHTML = ""; saveComment(); });
$("questions").addEventListener("change", (e) => { location.hash = e.target.value; openQuestion(e.target.value); });
$("addbtn").addEventListener("click", async () => {
  const body = {points: parseFloat($("newpoints").value), explanation: $("newexpl").value, note: $("newnote").value};
  const {status, data} = await api("POST", `/api/questions/${encodeURIComponent(state.question.name)}/items`, body);
  if (status !== 200) { alert(data.error); return; }
  $("newpoints").value = $("newexpl").value = $("newnote").value = "";
  await refreshScores();
});

(async () => {
  const me = await api("GET", "/api/me");
  $("ta").textContent = `marking as ${me.data.ta}`;
  await loadQuestions();
})();
