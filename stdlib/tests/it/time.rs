//! Times in zones, time literals and `Date:` headers (docs/language.md
//! ("Times and zones")).

use weir_stdlib::registry::{FunctionImpl, member_value};
use weir_stdlib::time::{Zone, parse_date_header, parse_rfc3339};
use weir_stdlib::{Limits, Message, Transaction, Value, registry};

fn at(rfc3339: &str) -> i64 {
    parse_rfc3339(rfc3339).expect("a valid RFC 3339 time")
}

fn local(secs: i64, zone: &str) -> Value {
    let Some(FunctionImpl::Pure(imp)) = registry().function("local").map(|f| f.imp) else {
        panic!("local is a pure builtin");
    };
    imp(&[Value::utc(secs), Value::str(zone)])
}

fn member(v: &Value, m: &str) -> String {
    member_value(v, m).expect("a time member").to_text()
}

#[test]
fn local_reads_members_in_the_zone_with_daylight_saving() {
    // Winter: Berlin is UTC+1.
    let winter = local(at("2024-12-20T18:30:00Z"), "Europe/Berlin");
    assert_eq!(member(&winter, "hour"), "19");
    assert_eq!(member(&winter, "minute"), "30");
    assert_eq!(member(&winter, "weekday"), "friday");
    assert_eq!(winter.to_text(), "2024-12-20T19:30:00+01:00");
    // Summer: UTC+2.
    let summer = local(at("2024-07-01T12:00:00Z"), "Europe/Berlin");
    assert_eq!(member(&summer, "hour"), "14");
    // Across midnight the date and weekday move too.
    let late = local(at("2024-12-20T23:30:00Z"), "Europe/Berlin");
    assert_eq!(member(&late, "day"), "21");
    assert_eq!(member(&late, "weekday"), "saturday");
    let ny = local(at("2025-01-01T03:00:00Z"), "America/New_York");
    assert_eq!(
        [
            member(&ny, "year"),
            member(&ny, "month"),
            member(&ny, "day"),
            member(&ny, "hour")
        ],
        ["2024", "12", "31", "22"]
    );
}

#[test]
fn the_spring_forward_hour_is_skipped() {
    // 2024-03-31 in Berlin: 01:59:59 CET is followed by 03:00:00 CEST.
    let before = local(at("2024-03-31T00:59:59Z"), "Europe/Berlin");
    let after = local(at("2024-03-31T01:00:00Z"), "Europe/Berlin");
    assert_eq!(member(&before, "hour"), "1");
    assert_eq!(member(&after, "hour"), "3");
    assert_eq!(after.to_text(), "2024-03-31T03:00:00+02:00");
}

#[test]
fn an_unknown_zone_at_run_time_leaves_the_zone_unchanged() {
    let t = local(at("2024-12-20T18:00:00Z"), "Mars/Olympus");
    assert_eq!(member(&t, "hour"), "18");
    assert_eq!(t.to_text(), "2024-12-20T18:00:00Z");
}

#[test]
fn time_literals_are_rfc_3339_with_an_offset() {
    assert_eq!(
        parse_rfc3339("2024-12-20T00:00:00+01:00"),
        Some(at("2024-12-19T23:00:00Z"))
    );
    assert_eq!(parse_rfc3339("2024-12-20"), None);
    assert_eq!(parse_rfc3339("2024-12-20T00:00:00"), None);
    assert_eq!(parse_rfc3339("tomorrow"), None);
    assert_eq!(
        weir_stdlib::time::format(at("2024-12-20T00:00:00+01:00"), Zone::UTC),
        "2024-12-19T23:00:00Z"
    );
}

#[test]
fn obsolete_date_forms_parse() {
    let cases = [
        ("Mon, 2 Dec 2024 20:00 GMT", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 20:00:00 UT", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 15:00:00 EST", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 16:00 EDT", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 14:00:00 CST", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 15:00:00 CDT", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 13:00:00 MST", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 14:00:00 MDT", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 12:00 PST", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 13:00:00 PDT", "2024-12-02T20:00:00Z"),
        // Military zones are -0000 (RFC 5322 §4.3), `Z` is UTC.
        ("Mon, 2 Dec 2024 20:00:00 A", "2024-12-02T20:00:00Z"),
        ("Mon, 2 Dec 2024 20:00:00 z", "2024-12-02T20:00:00Z"),
        ("2 Dec 24 20:00 +0000", "2024-12-02T20:00:00Z"),
        (
            "Mon, 2 Dec 2024 21:00:00 +0100 (CET)",
            "2024-12-02T20:00:00Z",
        ),
        // A weekday that contradicts the date is ignored.
        ("Fri, 2 Dec 2024 20:00:00 +0000", "2024-12-02T20:00:00Z"),
    ];
    for (header, want) in cases {
        assert_eq!(
            parse_date_header(header).map(weir_stdlib::value::format_time),
            Some(want.to_string()),
            "{header}"
        );
    }
    assert_eq!(parse_date_header("next Tuesday"), None);
    assert_eq!(parse_date_header(""), None);
}

fn date_of(header: &str, now: i64) -> String {
    let raw = format!("Date: {header}\r\nSubject: x\r\n\r\nbody");
    let m = Message::parse(raw.as_bytes(), &Limits::default()).expect("parse");
    let tx = Transaction::with_defaults(m, None, &[], None, None, now);
    let date = registry().field("date").and_then(|f| f.get).expect("date");
    date(&tx).to_text()
}

#[test]
fn the_date_field_reads_obsolete_forms_and_falls_back_to_now() {
    assert_eq!(
        date_of("Mon, 2 Dec 2024 20:00 GMT", 0),
        "2024-12-02T20:00:00Z"
    );
    // An unreadable Date is the time of evaluation, as a missing one is.
    assert_eq!(
        date_of("sometime last week", at("2024-12-20T18:00:00Z")),
        "2024-12-20T18:00:00Z"
    );
}
