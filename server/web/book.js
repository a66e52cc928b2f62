// The patient booking page (/book): hospital -> department -> doctor -> session with live
// `remaining`; book (a sold-out answer is an outcome, not an error); pay through the
// provider's checkout; see the number and verification code; list and cancel my bookings
// within the window, with the refund shown. Only the public API of docs/API.md.

import { call, claims, everyRow, newIdempotencyKey, Poller, takeToken } from "./api.js";
import { explain, h, hospitalDate, money, PERIODS, replace, say, time } from "./ui.js";

const $ = (id) => document.getElementById(id);
const token = takeToken("patient");
const status = $("status");
const state = { hospitals: [], sessions: null, payment: null };

// --- signing in ---------------------------------------------------------------------------

function showSignedIn() {
  const sub = token.get() && claims(token.get()).sub;
  $("signin").hidden = Boolean(sub);
  replace($("who"), sub ? [`Signed in as ${sub} `, h("button", {
    type: "button", className: "link", onclick: () => { token.clear(); location.reload(); },
  }, "Sign out")] : "Not signed in");
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token.set($("token").value);
  showSignedIn();
  loadSessions();
  loadMine();
});

// --- browsing -----------------------------------------------------------------------------

// Lists load one after another (hospital -> department -> doctor) while the patient may
// already be choosing: a choice still on offer survives the reload.
function options(select, rows, label) {
  const chosen = select.value;
  replace(select, rows.map((row) => h("option", { value: row.id }, label(row))));
  if (rows.some((row) => row.id === chosen)) select.value = chosen;
}

async function loadHospitals() {
  state.hospitals = await everyRow("/v1/hospitals", "hospitals");
  options($("hospital"), state.hospitals, (x) => x.name);
  await loadDepartments();
}

function hospital() {
  return state.hospitals.find((x) => x.id === $("hospital").value);
}

// An answer for a choice changed meanwhile is dropped: the later choice's own load, which
// may finish first, must not be overwritten by an older one.
async function loadDepartments() {
  const asked = $("hospital").value;
  const departments = await everyRow(`/v1/hospitals/${encodeURIComponent(asked)}/departments`,
    "departments");
  if ($("hospital").value !== asked) return;
  options($("department"), departments, (x) => x.name);
  await loadDoctors();
}

async function loadDoctors() {
  const asked = [$("hospital").value, $("department").value];
  const [id, department] = asked.map(encodeURIComponent);
  const doctors = await everyRow(`/v1/hospitals/${id}/doctors?department_id=${department}`,
    "doctors");
  if ($("hospital").value !== asked[0] || $("department").value !== asked[1]) return;
  options($("doctor"), doctors, (x) => `${x.name}${x.title ? `, ${x.title}` : ""}`
    + ` (${money(x.fee_cents)})`);
  loadSessions();
}

// The chosen doctor's sessions from the hospital's today on, refreshed every two seconds
// while the page is visible: `remaining` moves while the crowd books.
function loadSessions() {
  if (state.sessions) state.sessions.stop();
  if (!token.get() || !$("doctor").value) {
    replace($("sessions"), h("li", {}, token.get() ? "No doctor here yet." : "Sign in to see sessions."));
    return;
  }
  const query = new URLSearchParams({
    hospital_id: $("hospital").value,
    department_id: $("department").value,
    doctor_id: $("doctor").value,
    from: hospitalDate(hospital().timezone),
    limit: "100",
  });
  state.sessions = new Poller(`/v1/schedules?${query}`, token.get(), 2, showSessions,
    (error) => say(status, explain(error), "error")).start();
}

const AVAILABILITY = {
  open: (s) => `${s.remaining} of ${s.capacity} left`,
  sold_out: () => "Sold out",
  not_open: (s) => `Opens ${time(s.opens_at)}`,
  closed: () => "Closed",
  suspended: () => "Suspended by the hospital",
};

function showSessions(body) {
  if (!body.schedules.length) {
    replace($("sessions"), h("li", {}, "No sessions from today on."));
    return;
  }
  replace($("sessions"), body.schedules.map((s) => {
    const label = `${s.visit_date} ${PERIODS[s.period]}`;
    return h("li", { className: `session ${s.status}`, "data-schedule": s.id, "data-doctor": s.doctor_id },
      h("span", { className: "when" }, label),
      h("span", { className: "fee" }, money(s.fee_cents)),
      h("span", { className: "left" }, AVAILABILITY[s.status](s)),
      h("button", {
        type: "button", disabled: s.status !== "open", "aria-label": `Book ${label}`,
        onclick: () => book(s),
      }, "Book"));
  }));
}

// --- booking ------------------------------------------------------------------------------

async function book(schedule) {
  say(status, "Booking...");
  try {
    const { body } = await call("POST", `/v1/schedules/${schedule.id}/bookings`, {
      token: token.get(), body: {}, idempotencyKey: newIdempotencyKey(),
    });
    showBooking(body.booking, true);
    say(status, `Booked: number ${body.booking.number}.`, "success");
    loadMine();
  } catch (error) {
    // A sold-out answer is what most of a rush gets: an outcome, never an error.
    say(status, explain(error), error.code === "sold_out" ? "soldout" : "error");
  }
}

function showBooking(booking, focus) {
  const held = booking.status === "pending_payment";
  replace($("booking"), h("dl", { className: "facts" },
    h("dt", {}, "Number"), h("dd", { className: "big", id: "booking-number" }, booking.number),
    h("dt", {}, "Verification code"),
    h("dd", { className: "big code", id: "booking-code" }, booking.verification_code),
    h("dt", {}, "Status"), h("dd", { id: "booking-status" }, booking.status.replace("_", " ")),
    h("dt", {}, "Visit"), h("dd", {}, `${booking.visit_date} ${PERIODS[booking.period] || ""}`),
    h("dt", {}, "Fee"), h("dd", {}, money(booking.fee_cents)),
    held && h("dt", {}, "Pay before"), held && h("dd", {}, time(booking.hold_expires_at))),
  held && h("button", { type: "button", id: "pay", onclick: () => pay(booking) },
    `Pay ${money(booking.fee_cents)}`),
  h("p", { id: "checkout" }));
  $("result").hidden = false;
  if (focus) $("result").focus();
}

// Payment happens at the provider's checkout (its own page); this page then watches the
// booking until the provider's webhook has confirmed it.
async function pay(booking) {
  try {
    const { body } = await call("POST", `/v1/bookings/${booking.id}/payments`, {
      token: token.get(), body: {},
    });
    replace($("checkout"), h("a", {
      href: body.payment.checkout_url, target: "_blank", rel: "noopener", id: "checkout-link",
    }, "Open the checkout to pay"), " - this page updates once the payment is confirmed.");
    $("checkout-link").focus();
    watchPayment(booking.id);
  } catch (error) {
    say(status, explain(error), "error");
  }
}

function watchPayment(bookingId) {
  if (state.payment) state.payment.stop();
  state.payment = new Poller(`/v1/bookings/${bookingId}`, token.get(), 1, ({ booking }) => {
    if (booking.status === "pending_payment") return;
    state.payment.stop();
    showBooking(booking, true);
    say(status, booking.status === "booked"
      ? `Paid: number ${booking.number} is yours.` : `The booking is ${booking.status}.`,
    booking.status === "booked" ? "success" : "error");
    loadMine();
  }).start();
}

// --- my bookings --------------------------------------------------------------------------

const CANCELLABLE = new Set(["pending_payment", "booked"]);

async function loadMine() {
  if (!token.get()) {
    replace($("my-bookings"));
    return;
  }
  try {
    const { body } = await call("GET", "/v1/me/bookings?limit=100", { token: token.get() });
    replace($("my-bookings"), body.bookings.length ? body.bookings.map(mine)
      : h("li", {}, "No bookings yet."));
  } catch (error) {
    say(status, explain(error), "error");
  }
}

function mine(b) {
  const payment = b.payment && b.payment.status !== "none" ? ` - payment ${b.payment.status}` : "";
  return h("li", { className: `booking ${b.status}`, id: `booking-${b.id}` },
    h("span", {}, `${b.visit_date} ${PERIODS[b.period] || ""}, ${b.department_id}, `
      + `number ${b.number}`),
    h("span", { className: "state" }, `${b.status.replace("_", " ")}${payment}`),
    CANCELLABLE.has(b.status) && h("button", {
      type: "button", className: "secondary", onclick: (e) => askCancel(e.target, b),
    }, "Cancel"));
}

// Two steps, both plain buttons: the first asks, the second (focused) cancels.
function askCancel(button, booking) {
  const confirm = h("button", {
    type: "button", className: "danger", onclick: () => cancel(booking),
  }, `Yes, cancel number ${booking.number}`);
  button.replaceWith(confirm);
  confirm.focus();
}

async function cancel(booking) {
  try {
    const { body } = await call("POST", `/v1/bookings/${booking.id}/cancel`, {
      token: token.get(), body: {},
    });
    say(status, `Cancelled number ${body.booking.number}. ${refund(body.booking)}`, "success");
    await loadMine();
    $("mine-h").focus();
  } catch (error) {
    say(status, explain(error), "error");
  }
}

function refund(booking) {
  const payment = booking.payment || { status: "none" };
  if (["paid", "refunding", "refunded"].includes(payment.status)) {
    const done = payment.status === "refunded" ? "refunded" : "being refunded";
    return `Refund: ${money(payment.amount_cents)} ${done} to your original account.`;
  }
  return "Nothing was paid, so there is nothing to refund.";
}

// --- start --------------------------------------------------------------------------------

$("hospital").addEventListener("change", loadDepartments);
$("department").addEventListener("change", loadDoctors);
$("doctor").addEventListener("change", loadSessions);
$("refresh-mine").addEventListener("click", loadMine);
$("mine-h").tabIndex = -1;
showSignedIn();
loadHospitals().catch((error) => say(status, explain(error), "error"));
loadMine();
