// Small DOM helpers both pages share: elements built from data (never from HTML strings,
// so nothing the API returns is ever run as markup), money, dates, and status messages
// that screen readers announce.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "className") element.className = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function replace(element, ...children) {
  element.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

const MONEY = new Intl.NumberFormat("en", { style: "currency", currency: "CNY" });

export function money(cents) {
  return MONEY.format((cents || 0) / 100);
}

export const PERIODS = { am: "Morning", pm: "Afternoon", night: "Evening" };

// The hospital's calendar date, `days` from today, in its IANA time zone (YYYY-MM-DD).
export function hospitalDate(timezone, days = 0) {
  const when = new Date(Date.now() + days * 86400000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: timezone || "UTC" }).format(when);
}

export function time(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// A message in the page's live region: `kind` is "info", "success", "soldout" or "error".
export function say(region, text, kind = "info") {
  region.className = `status ${kind}`;
  region.textContent = text;
}

// What a problem's stable code means to the person in front of the page.
export const EXPLAIN = {
  sold_out: "Sold out: every number of this session is taken.",
  already_booked: "You already hold a number for this session.",
  daily_limit: "You already hold as many bookings at this hospital that day as it allows.",
  department_limit: "You already hold a booking in this department that day.",
  not_open: "Booking for this session has not opened yet.",
  schedule_closed: "This session is closed to booking.",
  blacklisted: "This hospital does not accept bookings from you at the moment.",
  cancel_window_closed: "It is too late to cancel this booking online.",
  invalid_state: "This booking can no longer change that way.",
  rate_limited: "Too many tries: please wait a little.",
  busy: "The service is very busy: please try again in a moment.",
  unauthorized: "Please sign in again: your token is missing or expired.",
  forbidden: "Your token may not do this.",
  booking_not_found: "No such booking.",
  schedule_not_found: "No such session.",
  hospital_not_found: "No such hospital.",
  not_found: "This server does not offer that yet.",
};

export function explain(error) {
  if (error && error.code && EXPLAIN[error.code]) {
    const wait = error.retryAfter ? ` (about ${error.retryAfter} s)` : "";
    return EXPLAIN[error.code] + wait;
  }
  return `Something went wrong: ${error.message || error}`;
}
