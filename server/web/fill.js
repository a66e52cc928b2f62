// The console's live fill: today's and tomorrow's sessions of one hospital per department,
// each with its fill bar, bookings per second, the moment it sold out and the holds still
// waiting for payment. One live stream feeds it (the server pushes the sessions when they
// change, checked every second, and the holds, checked every five), read by every console
// of a hospital from one shared snapshot: an open console costs the server a write when
// something changed, not a request a second.

import { call, everyRow, LiveStream } from "./api.js";
import { explain, h, hospitalDate, money, PERIODS, replace, say } from "./ui.js";

const WINDOW_SECONDS = 5;

export class LiveFill {
  constructor({ hospital, token, element, pulse, preview, status, names }) {
    Object.assign(this, { hospital, token, element, pulse, preview, status, names });
    this.schedules = [];
    this.samples = new Map(); // schedule id -> [[seconds, held]...] of the last few seconds
    this.soldOutAt = new Map(); // schedule id -> Date it was first seen sold out (or null)
    this.holds = new Map(); // schedule id -> bookings pending payment
  }

  start() {
    const today = hospitalDate(this.hospital.timezone);
    const tomorrow = hospitalDate(this.hospital.timezone, 1);
    const id = encodeURIComponent(this.hospital.id);
    const onError = (error) => say(this.status, explain(error), "error");
    this.stream = new LiveStream(`/v1/admin/hospitals/${id}/live?from=${today}&to=${tomorrow}`,
      this.token, (name, data) => {
        if (name === "schedules") this.onSchedules(data.schedules);
        else if (name === "holds") this.onHolds(data.bookings);
        else if (name === "problem") onError({ code: data.code });
      }, onError).start();
    // Rates decay to zero while nothing is pushed: redraw on a clock, not on events.
    this.clock = setInterval(() => this.render(), 1000);
  }

  stop() {
    this.stream.stop();
    clearInterval(this.clock);
  }

  onSchedules(schedules) {
    const now = performance.now() / 1000;
    for (const s of schedules) {
      const held = s.capacity - s.remaining;
      const samples = this.samples.get(s.id) || [];
      samples.push([now, held]);
      this.samples.set(s.id, samples);
      if (s.status === "sold_out" && !this.soldOutAt.has(s.id)) {
        // Sold out already when the console first saw it: the moment is unknown.
        this.soldOutAt.set(s.id, this.schedules.length ? new Date() : null);
      }
      if (s.status !== "sold_out") this.soldOutAt.delete(s.id);
    }
    this.schedules = schedules;
    this.render();
  }

  // A page of at most 500 holds is enough to count them during an opening; the count is
  // marked "500+" beyond that.
  onHolds(bookings) {
    this.holds = new Map();
    for (const b of bookings) this.holds.set(b.schedule_id, (this.holds.get(b.schedule_id) || 0) + 1);
    this.holdsCapped = bookings.length >= 500;
    this.render();
  }

  rate(id) {
    const now = performance.now() / 1000;
    const samples = (this.samples.get(id) || []).filter(([t]) => now - t <= WINDOW_SECONDS);
    const all = this.samples.get(id) || [];
    // Keep the newest sample even when it is old: it is where the next rate starts from.
    this.samples.set(id, samples.length ? samples : all.slice(-1));
    if (samples.length < 2) return 0;
    const [t0, held0] = samples[0];
    return Math.max(0, (samples[samples.length - 1][1] - held0) / Math.max(1, now - t0));
  }

  render() {
    const byDay = new Map();
    let total = 0;
    for (const s of this.schedules) {
      const day = byDay.get(s.visit_date) || new Map();
      const department = day.get(s.department_id) || [];
      department.push(s);
      day.set(s.department_id, department);
      byDay.set(s.visit_date, day);
    }
    const rows = [];
    for (const [date, departments] of [...byDay].sort()) {
      rows.push(h("h3", {}, date === hospitalDate(this.hospital.timezone) ? `Today, ${date}` : `Tomorrow, ${date}`));
      for (const [department, schedules] of [...departments].sort()) {
        rows.push(h("h4", {}, this.names.departments.get(department) || department));
        rows.push(h("ul", { className: "fill" }, schedules.map((s) => {
          const rate = this.rate(s.id);
          total += rate;
          return this.row(s, rate);
        })));
      }
    }
    const holds = [...this.holds.values()].reduce((a, b) => a + b, 0);
    replace(this.pulse, `${total.toFixed(1)} bookings/s across the hospital; `,
      `${holds}${this.holdsCapped ? "+" : ""} holds pending payment.`);
    replace(this.element, rows.length ? rows : h("p", {}, "No sessions today or tomorrow."));
  }

  doctor(s) {
    return this.names.doctors.get(s.doctor_id) || s.doctor_id;
  }

  row(s, rate) {
    const held = s.capacity - s.remaining;
    const label = `${this.doctor(s)}, ${PERIODS[s.period]}`;
    const soldOut = this.soldOutAt.get(s.id);
    const notes = [
      `${held} of ${s.capacity} taken`,
      rate > 0 && `${rate.toFixed(1)}/s`,
      this.holds.get(s.id) && `${this.holds.get(s.id)} awaiting payment`,
      s.status === "sold_out" && (soldOut ? `sold out at ${soldOut.toLocaleTimeString()}` : "sold out"),
      s.status === "suspended" && "suspended",
      s.status === "not_open" && "not open yet",
    ].filter(Boolean);
    return h("li", { className: `fill-row ${s.status}`, "data-schedule": s.id },
      h("span", { className: "label" }, label),
      h("progress", { max: s.capacity, value: held, "aria-label": `${label}: ${held} of ${s.capacity} taken` }),
      h("span", { className: "notes" }, notes.join(" · ")),
      s.status !== "suspended" && s.status !== "closed" && h("button", {
        type: "button", className: "secondary", "aria-label": `Suspend ${label}`,
        onclick: () => this.previewSuspension(s),
      }, "Suspend..."));
  }

  // What suspending would do, from the hospital's own records of that session, before
  // anything is changed.
  async previewSuspension(s) {
    const id = encodeURIComponent(this.hospital.id);
    const query = `from=${s.visit_date}&to=${s.visit_date}&doctor_id=${encodeURIComponent(s.doctor_id)}`;
    let bookings;
    try {
      bookings = (await everyRow(`/v1/admin/hospitals/${id}/bookings?${query}`, "bookings", this.token))
        .filter((b) => b.schedule_id === s.id);
    } catch (error) {
      say(this.status, explain(error), "error");
      return;
    }
    const count = (state) => bookings.filter((b) => b.status === state).length;
    const booked = count("booked");
    const holds = count("pending_payment");
    const kept = count("attended") + count("no_show");
    const reason = h("textarea", { id: "suspend-reason", rows: 2, required: true, maxlength: 500 });
    replace(this.preview,
      h("h3", {}, `Suspend ${this.doctor(s)}, ${s.visit_date} ${PERIODS[s.period]}?`),
      h("ul", { id: "suspend-consequences" },
        h("li", {}, "The session closes to new bookings at once."),
        h("li", {}, `${booked} booked and ${holds} awaiting payment will be cancelled by the hospital, and their patients notified.`),
        h("li", {}, s.fee_cents > 0
          ? `Up to ${booked} paid fees refunded in full: at most ${money(booked * s.fee_cents)}.`
          : "Nothing to refund: this session is free."),
        h("li", {}, `${kept} attended or no-show bookings stay as they are.`)),
      h("label", { for: "suspend-reason" }, "Reason (shown to patients)"), reason,
      h("button", { type: "button", className: "danger", id: "suspend-confirm",
        onclick: () => this.suspend(s, reason.value) }, "Suspend session"),
      h("button", { type: "button", className: "secondary",
        onclick: () => { this.preview.hidden = true; } }, "Keep it open"));
    this.preview.hidden = false;
    this.preview.focus();
  }

  async suspend(s, reason) {
    if (!reason.trim()) {
      say(this.status, "Give a reason: patients see it.", "error");
      return;
    }
    try {
      await call("POST", `/v1/admin/schedules/${s.id}/suspend`, { token: this.token, body: { reason } });
      this.preview.hidden = true;
      say(this.status, `Suspended ${this.doctor(s)}, ${s.visit_date} ${PERIODS[s.period]}.`, "success");
    } catch (error) {
      say(this.status, explain(error), "error");
    }
  }
}
