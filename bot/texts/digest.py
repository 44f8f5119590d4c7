"""Sentences managers and agents read about service quality: the digest (Telegram HTML), the
``/stats`` answer, the chart's words and caption, and the alerts (complaint spikes, SLA breaches).

``quality`` computes the figures as plain data (:class:`quality.digest.Digest`,
:class:`quality.alerts.SpikeAlert`, :class:`quality.alerts.SlaBreach`); this module words them.
Staff-facing, in English.
"""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from bot.texts.common import TELEGRAM_TEXT_LIMIT, escape, format_seconds, telegram_length
from quality.alerts import SlaBreach, SpikeAlert
from quality.digest import BASELINE_DAYS, Digest, Period, PeriodKind
from quality.digest.chart import ChartLabels
from quality.fetch import UNKNOWN_SENTIMENT
from quality.stats import Change

CHART_LABELS = ChartLabels(
    volume_title="Customer messages per day, by category",
    volume_axis="messages",
    no_messages="no messages",
    rating_title="Daily mean rating (1–5) and control limits",
    rating_axis="rating",
    centre="centre {centre:.2f}",
    control_limits="control limits (±3 SE)",
    mean_rating="mean rating",
    outside="outside the limits",
    day="{day:%d %b}",
)


def photo_caption(digest: Digest) -> str:
    """The caption under the digest's chart."""
    p = digest.period
    span = f"{p.first:%-d %b}" if p.first == p.last else f"{p.first:%-d %b} – {p.last:%-d %b}"
    return f"Messages by category and daily mean rating · {span}"


def _trend(c: Change, *, points: bool = False) -> str:
    """``▲ 12%`` / ``▼ 3 pts`` / ``= `` / empty when there is nothing to compare."""
    if c.delta is None:
        return ""
    if points:
        value = c.delta * 100
        if abs(value) < 0.5:
            return " (=)"
        return f" ({'▲' if value > 0 else '▼'} {abs(value):.0f} pts)"
    if c.relative is None:
        return f" (▲ from {c.previous:g})" if c.delta > 0 else ""
    value = c.relative * 100
    if abs(value) < 0.5:
        return " (=)"
    return f" ({'▲' if value > 0 else '▼'} {abs(value):.0f}%)"


def _mean_trend(c: Change) -> str:
    if c.delta is None:
        return ""
    if abs(c.delta) < 0.005:
        return " (=)"
    return f" ({'▲' if c.delta > 0 else '▼'} {abs(c.delta):.2f})"


def period_label(period: Period, tz: ZoneInfo) -> str:
    """``Tue 3 Mar 2026`` or ``2 Mar – 8 Mar 2026``, with ``until 14:05`` when cut at a time."""
    if period.first == period.last:
        label = f"{period.first:%a %-d %b %Y}"
    else:
        label = f"{period.first:%-d %b} – {period.last:%-d %b %Y}"
    if period.partial:
        label += f" until {period.end.astimezone(tz):%H:%M}"
    return label


def _title(digest: Digest) -> str:
    p = digest.period
    tz = ZoneInfo(digest.timezone)
    if p.kind == PeriodKind.DAY:
        name, span = "Daily digest", f"{p.first:%a %-d %b %Y}"
    elif p.kind == PeriodKind.WEEK:
        name, span = "Weekly digest", f"{p.first:%-d %b} – {p.last:%-d %b %Y}"
    else:
        name, span = f"Last {p.days} days", f"{p.first:%-d %b} – {p.last:%-d %b %Y}"
    so_far = f", so far (until {p.end.astimezone(tz):%H:%M})" if p.partial else ""
    return f"📊 <b>{name}</b> · {escape(span)}{escape(so_far)}\n<i>{escape(digest.timezone)}</i>"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _top(counts: Mapping[str, int], limit: int = 5) -> str:
    items = list(counts.items())
    shown = [f"{escape(k)} {v}" for k, v in items[:limit]]
    if len(items) > limit:
        shown.append(f"+{len(items) - limit} more")
    return " · ".join(shown)


def _volume_lines(d: Digest) -> list[str]:
    v, ch = d.current.volume, d.changes
    lines = [
        "<b>Volume</b>",
        f"🎫 New tickets: <b>{v.tickets}</b>{_trend(ch['tickets'])}",
        f"💬 Customer messages: <b>{v.customer_messages}</b>{_trend(ch['customer_messages'])}",
        f"🤖 Self-served: {v.self_served} · 🙋 escalated: {v.escalated}"
        f" · 🔄 reopened: {v.reopened}",
    ]
    if v.messages_by_category:
        lines.append(f"🗂 {_top(v.messages_by_category)}")
    for label, counts in (("Mood", v.messages_by_sentiment), ("Tickets", v.tickets_by_sentiment)):
        analysed = {k: n for k, n in counts.items() if k != UNKNOWN_SENTIMENT}
        total = sum(analysed.values())
        if total:
            parts = [f"{escape(k)} {_share(n, total)}" for k, n in analysed.items()]
            lines.append(f"🌡 {label}: {' · '.join(parts)}")
    return lines


def _csat_lines(d: Digest) -> list[str]:
    c, ch = d.current.csat, d.changes
    lines = ["<b>Satisfaction</b>"]
    if c.count == 0 or c.mean is None:
        lines.append("⭐ No ratings in this period.")
        return lines
    ci = ""
    if c.ci_low is not None and c.ci_high is not None:
        ci = f" (95% CI {c.ci_low:.2f}–{c.ci_high:.2f})"
    sd = f" · sd {c.std:.2f}" if c.std is not None else ""
    lines.append(f"⭐ Mean <b>{c.mean:.2f}</b>{_mean_trend(ch['csat_mean'])}{ci}")
    lines.append(f"Median {c.median:g}{sd} · {c.count} ratings{_trend(ch['csat_count'])}")
    share = c.satisfied_share or 0.0
    lines.append(
        f"😊 Rated 4–5: <b>{share * 100:.0f}%</b>{_trend(ch['csat_satisfied_share'], points=True)}"
    )
    lines.append(" · ".join(f"{i + 1}★ {n}" for i, n in enumerate(c.distribution)))
    return lines


def _response_lines(d: Digest) -> list[str]:
    cur, ch = d.current, d.changes
    fr, rs = cur.first_response, cur.resolution
    lines = ["<b>Response</b>"]
    if fr.count:
        lines.append(
            f"⏱ First response: median <b>{format_seconds(fr.median)}</b>"
            f"{_trend(ch['first_response_median'])} · mean {format_seconds(fr.mean)}"
            f" · p90 {format_seconds(fr.p90)}"
        )
    else:
        lines.append("⏱ First response: no answered tickets yet.")
    hours = "business hours" if d.business_hours else "round the clock"
    target = f"{d.first_response_target_minutes:g} min"
    total = cur.answered + cur.unanswered
    lines.append(
        f"🎯 Over the {target} target ({hours}): <b>{cur.breaches}</b> of {total}"
        f"{_trend(ch['breaches'])}"
    )
    if cur.unanswered:
        lines.append(f"⏳ Still waiting for a first answer: {cur.unanswered}")
    if rs.count:
        lines.append(
            f"✅ Resolved: {rs.count} · median {format_seconds(rs.median)}"
            f"{_trend(ch['resolution_median'])} · p90 {format_seconds(rs.p90)}"
        )
    return lines


def _agent_lines(d: Digest, limit: int = 8) -> list[str]:
    agents = d.current.agents
    if not agents:
        return []
    lines = ["<b>Agents</b>"]
    for a in agents[:limit]:
        rating = f" · ⭐ {a.mean_rating:.1f} ({a.ratings})" if a.mean_rating is not None else ""
        lines.append(
            f"• {escape(a.name)}: {a.handled} resolved · first reply "
            f"{format_seconds(a.median_first_response)}{rating}"
        )
    if len(agents) > limit:
        lines.append(f"… and {len(agents) - limit} more")
    return lines


MAX_SPIKE_LINES = 5


def _alert_lines(d: Digest) -> list[str]:
    lines: list[str] = []
    cc = d.control
    for day in cc.flagged:
        if day.mean is None or day.lower is None or day.upper is None:
            continue
        direction = "below" if day.mean < day.lower else "above"
        lines.append(
            f"⚠️ {day.day:%a %-d %b}: mean rating {day.mean:.2f} is {direction} the usual range "
            f"({day.lower:.2f}–{day.upper:.2f}, {day.count} ratings)"
        )
    flagged = list(d.spikes.flagged)
    for category, r in flagged[:MAX_SPIKE_LINES]:
        where = f"in <b>{escape(category)}</b>" if category else "overall"
        lines.append(
            f"🚨 Complaint spike {where}: {r.k} of {r.n} messages negative "
            f"(usually {r.p0 * 100:.0f}%, p = {r.p_value:.1g})"
        )
    if len(flagged) > MAX_SPIKE_LINES:
        lines.append(f"🚨 … and {len(flagged) - MAX_SPIKE_LINES} more categories with a spike")
    return ["<b>Alerts</b>", *lines] if lines else []


def _theme_lines(d: Digest, quotes: bool = True) -> list[str]:
    if not d.themes:
        return []
    lines = ["<b>What customers say</b>"]
    for t in d.themes:
        phrases = f" — {escape(', '.join(t.key_phrases))}" if t.key_phrases else ""
        lines.append(f"🏷 <b>{escape(t.category)}</b> ({t.messages}){phrases}")
        if quotes:
            lines.extend(f"  “<i>{escape(q)}</i>”" for q in t.quotes)
    return lines


def _at_risk_lines(d: Digest, limit: int = 5) -> list[str]:
    lines: list[str] = []
    if d.staffing is not None:
        f = d.staffing
        lines += [
            "<b>Expected demand</b>",
            f"🔮 Tomorrow: <b>{f.day_expected:.0f}</b> customers "
            f"({f.day_low}–{f.day_high}, {f.level:.0%} interval)",
            f"🔮 Next 7 days: <b>{f.week_expected:.0f}</b> customers ({f.week_low}–{f.week_high})",
        ]
    if d.at_risk:
        if lines:
            lines.append("")
        lines.append("<b>Customers likely to need help</b>")
        for c in d.at_risk[:limit]:
            chance = f" ({c.score:.0%})" if c.score is not None else ""
            lines.append(f"• {escape(c.name)}{chance}: {escape(c.reason)}")
    return lines


def render_text(digest: Digest, limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """One Telegram HTML message; optional sections are shortened until it fits ``limit``."""
    prev = digest.previous_period
    compared = f"<i>Compared with {escape(period_label(prev, ZoneInfo(digest.timezone)))}</i>"
    core = [_title(digest), compared]
    variants = (
        (True, 8, True),
        (False, 8, True),
        (False, 3, True),
        (False, 3, False),
    )
    text = ""
    for quotes, agents, risk in variants:
        sections = [
            core,
            _alert_lines(digest),
            _volume_lines(digest),
            _csat_lines(digest),
            _response_lines(digest),
            _agent_lines(digest, agents),
            _theme_lines(digest, quotes),
            _at_risk_lines(digest) if risk else [],
        ]
        text = "\n\n".join("\n".join(s) for s in sections if s)
        if telegram_length(text) <= limit:
            return text
    return text[: limit - 1] + "…"  # not reached with the section limits above


def render_stats_text(digest: Digest) -> str:
    """The short answer to ``/stats``: headline figures of the last N days against the N before."""
    sections = [
        [
            _title(digest),
            "<i>Compared with "
            f"{escape(period_label(digest.previous_period, ZoneInfo(digest.timezone)))}</i>",
        ],
        _volume_lines(digest),
        _csat_lines(digest),
        _response_lines(digest),
        _agent_lines(digest, 5),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s)


def render_spike(alert: SpikeAlert) -> str:
    """The managers' message about a complaint spike (Telegram HTML)."""
    r = alert.result
    where = f"in <b>{escape(alert.category)}</b>" if alert.category is not None else "overall"
    return (
        f"🚨 <b>Complaint spike</b> {where} today ({alert.day:%a %-d %b})\n"
        f"{r.k} of {r.n} customer messages are negative; over the last {BASELINE_DAYS} days "
        f"the usual share is {r.p0 * 100:.0f}%.\n"
        f"Chance of this many by luck: p = {r.p_value:.1g}."
    )


def render_sla_breach(breach: SlaBreach, *, business_hours: bool) -> str:
    """The staff thread's message about a ticket waiting too long (Telegram HTML)."""
    clock = "business time" if business_hours else "so far"
    return (
        f"⏰ <b>#{breach.number}</b> has waited {format_seconds(breach.waited_seconds)} "
        f"({clock}) for a first answer; the target is {breach.target_minutes:g} min."
    )
