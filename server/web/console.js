// The staff console (/console) of one hospital: the staff token's own (a platform token
// picks one). Live fill of today's and tomorrow's sessions, check-in by verification code,
// suspension with its consequences previewed, day-end settlement, blacklist and whitelist
// with the events behind automatic entries, HIS sync with a dry run first, and the no-show
// analytics as charts. Only the public API of docs/API.md.

import { call, claims, everyRow, takeToken } from "./api.js";
import { outcomesChart } from "./charts.js";
import { LiveFill } from "./fill.js";
import { explain, h, hospitalDate, replace, say, time } from "./ui.js";

const $ = (id) => document.getElementById(id);
const token = takeToken("staff");
const status = $("status");
const desk = { hospital: null, fill: null };
const base = () => `/v1/admin/hospitals/${encodeURIComponent(desk.hospital.id)}`;
const auth = (extra = {}) => ({ token: token.get(), ...extra });

// --- signing in and choosing the hospital -------------------------------------------------

async function signIn() {
  const who = token.get() ? claims(token.get()) : {};
  if (!who.role) {
    $("signin").hidden = false;
    $("desk").hidden = true;
    return;
  }
  $("signin").hidden = true;
  $("desk").hidden = false;
  replace($("who"), `${who.sub || who.role}${who.hospital_id ? ` (${who.hospital_id})` : " (platform)"} `,
    h("button", { type: "button", className: "link",
      onclick: () => { token.clear(); location.reload(); } }, "Sign out"));
  const hospitals = await everyRow("/v1/hospitals", "hospitals");
  const mine = who.hospital_id ? hospitals.filter((x) => x.id === who.hospital_id) : hospitals;
  $("pick").hidden = Boolean(who.hospital_id);
  replace($("hospital"), mine.map((x) => h("option", { value: x.id }, x.name)));
  $("hospital").onchange = () => open(mine.find((x) => x.id === $("hospital").value));
  if (mine.length) await open(mine[0]);
  else say(status, "This token's hospital is not on the platform.", "error");
}

async function open(hospital) {
  desk.hospital = hospital;
  replace($("hospital-name"), `- ${hospital.name}`);
  if (desk.fill) desk.fill.stop();
  desk.fill = new LiveFill({
    hospital, token: token.get(), element: $("fill"), pulse: $("pulse"),
    preview: $("suspend-preview"), status, names: await names(hospital),
  });
  desk.fill.start();
  $("dayend-date").value = hospitalDate(hospital.timezone);
  await Promise.all([loadBlacklist(), loadAnalytics()]);
}

// The names of the hospital's doctors and departments, by id, for people to read: the
// sessions name them by id only. A name missing (one deleted since) falls back to its id.
async function names(hospital) {
  const id = encodeURIComponent(hospital.id);
  const [doctors, departments] = await Promise.all([
    everyRow(`/v1/hospitals/${id}/doctors`, "doctors"),
    everyRow(`/v1/hospitals/${id}/departments`, "departments"),
  ]);
  const byId = (rows) => new Map(rows.map((row) => [row.id, row.name]));
  return { doctors: byId(doctors), departments: byId(departments) };
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token.set($("token").value);
  signIn().catch((error) => say(status, explain(error), "error"));
});

// --- check-in -----------------------------------------------------------------------------

$("checkin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("code").value.trim();
  try {
    const { body } = await call("POST", `/v1/hospitals/${encodeURIComponent(desk.hospital.id)}/check-ins`,
      auth({ body: { verification_code: code } }));
    const b = body.booking;
    replace($("checkin-result"), h("p", { className: "status success", id: "checkin-ok" },
      `Checked in: number ${b.number}, patient ${b.patient_id}, ${b.department_id}, `
      + `${b.doctor_id || ""} (${b.visit_date} ${b.period || ""}).`));
    $("code").value = "";
  } catch (error) {
    const text = error.code === "booking_not_found"
      ? "No booking of today matches this code, or it was used already." : explain(error);
    replace($("checkin-result"), h("p", { className: "status error" }, text));
  }
  $("code").focus();
});

// --- day-end ------------------------------------------------------------------------------

$("dayend-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const { body } = await call("POST", `${base()}/day-end`, auth({ body: { date: $("dayend-date").value } }));
    replace($("dayend-result"), h("p", { className: "status success" },
      `Settled ${body.date}: ${body.no_shows} no-shows (finished ${time(body.finished_at)}).`));
  } catch (error) {
    replace($("dayend-result"), h("p", { className: "status error" }, error.code === "invalid_state"
      ? "That date has not ended yet at the hospital: its patients may still come." : explain(error)));
  }
});

$("dayend-view").addEventListener("click", async () => {
  const date = $("dayend-date").value;
  try {
    const rows = await everyRow(`${base()}/bookings?status=no_show&from=${date}&to=${date}`, "bookings", token.get());
    replace($("dayend-result"), h("p", {}, `${rows.length} no-shows on ${date}.`),
      h("ul", {}, rows.slice(0, 50).map((b) => h("li", {}, `${b.patient_id}: ${b.department_id}, ${b.doctor_id}, number ${b.number}`))));
  } catch (error) {
    say(status, explain(error), "error");
  }
});

// --- blacklist and whitelist --------------------------------------------------------------

async function loadBlacklist() {
  try {
    const { body } = await call("GET", `${base()}/blacklist?limit=100`, auth());
    replace($("blacklist"), body.entries.length ? body.entries.map(entry) : h("li", {}, "Nobody is blacklisted."));
  } catch (error) {
    replace($("blacklist"), h("li", {}, explain(error)));
  }
}

const BREACHES = {
  cancellation: "cancelled",
  late_cancellation: "cancelled late (counted twice)",
  no_show: "did not come",
};

// An entry, and for an automatic one the breaches that made it.
function entry(e) {
  return h("li", { className: `entry ${e.source}` },
    h("strong", {}, e.patient_id), ` ${e.source}, until ${time(e.until)} `,
    h("button", { type: "button", className: "secondary", "aria-label": `Lift the ban of ${e.patient_id}`,
      onclick: () => unlist(e.patient_id) }, "Lift"),
    e.events.length > 0 && h("details", {}, h("summary", {}, `${e.events.length} events behind it`),
      h("ul", {}, e.events.map((ev) => h("li", {},
        `${time(ev.occurred_at)}: ${BREACHES[ev.kind] || ev.kind}, booking ${ev.booking_id}`)))));
}

async function unlist(patient) {
  try {
    await call("DELETE", `${base()}/blacklist/${encodeURIComponent(patient)}`, auth());
    say(status, `${patient} may book again.`, "success");
    await loadBlacklist();
  } catch (error) {
    say(status, explain(error), "error");
  }
}

$("blacklist-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const patient = $("bl-patient").value.trim();
  const until = new Date(`${$("bl-until").value}T23:59:59Z`).toISOString();
  try {
    await call("PUT", `${base()}/blacklist/${encodeURIComponent(patient)}`, auth({ body: { until } }));
    say(status, `${patient} is blacklisted until ${$("bl-until").value}.`, "success");
    await loadBlacklist();
  } catch (error) {
    say(status, explain(error), "error");
  }
});

$("wl-add").addEventListener("click", async () => {
  const patient = $("bl-patient").value.trim();
  if (!patient) return say(status, "Give the patient id to whitelist.", "error");
  try {
    await call("PUT", `${base()}/whitelist/${encodeURIComponent(patient)}`, auth({ body: {} }));
    say(status, `${patient} is whitelisted: never blacklisted automatically.`, "success");
  } catch (error) {
    say(status, explain(error), "error");
  }
});

// --- HIS sync: a dry run first, then the same feed applied ---------------------------------

const his = { feed: null, type: null };
const COUNTS = ["created", "updated", "suspended", "unchanged", "conflicts", "errors"];

$("his-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("his-file").files[0];
  his.feed = file ? await file.text() : $("his-text").value;
  const csv = file ? file.name.endsWith(".csv") : !his.feed.trim().startsWith("{");
  his.type = csv ? "text/csv" : "application/json";
  await sync(true);
});

// A feed edited after its preview must be previewed again before it is applied.
for (const input of ["his-file", "his-text"]) {
  $(input).addEventListener("input", () => { $("his-apply").disabled = true; });
}

$("his-apply").addEventListener("click", () => sync(false));

async function sync(dryRun) {
  $("his-apply").disabled = true;
  try {
    const { body } = await call("POST", `${base()}/his-sync?dry_run=${dryRun}`,
      auth({ body: his.feed, contentType: his.type }));
    replace($("his-result"), h("h3", {}, dryRun ? "What applying would change" : "Applied"),
      h("dl", { className: "facts", id: "his-counts" },
        COUNTS.flatMap((key) => [h("dt", {}, key), h("dd", { "data-count": key }, String(body[key]))])),
      body.suspended > 0 && dryRun && h("p", { className: "status error" },
        `${body.suspended} sessions missing from this feed would be suspended, their bookings cancelled.`),
      hisRows(body.rows));
    $("his-apply").disabled = !dryRun;
    if (!dryRun) say(status, `The feed is applied: ${body.created} created, ${body.updated} updated, ${body.suspended} suspended.`, "success");
  } catch (error) {
    replace($("his-result"), h("p", { className: "status error" }, explain(error)));
  }
}

// The per-row diff: every row that changes something or is refused, with its line in the feed.
function hisRows(rows) {
  if (!rows.length) return h("p", {}, "Nothing would change.");
  const cells = (row) => [
    h("td", {}, row.line ?? ""),
    h("td", {}, row.external_id ?? ""),
    h("td", {}, row.action),
    h("td", {}, (row.changes || []).map((c) => `${c.field}: ${c.before ?? "-"} → ${c.after ?? "-"}`).join("; ")),
    h("td", {}, row.code ? `${row.code}${row.reason ? `: ${row.reason}` : ""}` : ""),
  ];
  return h("table", { id: "his-diff", className: "figures his" },
    h("caption", {}, "Rows that change something or are refused"),
    h("thead", {}, h("tr", {}, ["Line", "HIS id", "Action", "Changes", "Why not"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((row) => h("tr", { className: `his-${row.action}` }, cells(row)))));
}

// --- analytics ----------------------------------------------------------------------------

async function loadAnalytics() {
  const query = new URLSearchParams({ group_by: $("group-by").value });
  if ($("an-from").value) query.set("from", $("an-from").value);
  if ($("an-to").value) query.set("to", $("an-to").value);
  try {
    const { body } = await call("GET", `${base()}/analytics?${query}`, auth());
    replace($("analytics"), body.groups.length ? outcomesChart(body.groups) : h("p", {}, "No bookings in this range."));
  } catch (error) {
    say(status, explain(error), "error");
  }
}

$("analytics-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadAnalytics();
});

signIn().catch((error) => say(status, explain(error), "error"));
