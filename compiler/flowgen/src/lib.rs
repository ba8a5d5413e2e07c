//! Random, well-typed Flow rulesets for comparing the engines, generated
//! from a "choice tape" (a list of numbers, each consumed to make one
//! choice). An exhausted tape answers 0, and choice 0 is always the
//! simplest option, so shrinking the tape toward shorter and smaller
//! numbers shrinks the ruleset (the Hypothesis way). Shared by
//! `compiler/tests/differential.rs` and the `compare` fuzz target.
//!
//! Covered: every field of docs/language.md ("The message model"), members, `header()` and `.raw`,
//! indexing, every builtin, user `fn`s with parameters, `let` constants,
//! list literals, `+`/`-` on numbers, strings, times and durations, unary
//! `-`, every comparison with `!=`, `all` and `any`, `matches … as` (with
//! captures by number and by name),
//! `exists`, `in` over strings, numbers, networks and map keys, `under`,
//! map lookups (`MAP[key]`), `some`/`every` lambdas, `rate()`, `duplicate()`,
//! `matched()`, `score` (with decimal amounts), `and`/`or`/`not`,
//! `auth_results()` and its members (dotted properties included),
//! `attachments.archive` and `.encrypted`; every action and verdict (with
//! and without codes), `if`/`else`, `stop`, `shadow`, priorities,
//! templates, `notify … with … template`, `reply template [every D]`, and stdlib
//! imports.

use std::fmt::Write as _;

/// A source of choices.
pub struct Tape<'a> {
    data: &'a [u32],
    pos: usize,
}

impl<'a> Tape<'a> {
    /// A tape over `data`.
    pub fn new(data: &'a [u32]) -> Tape<'a> {
        Tape { data, pos: 0 }
    }

    /// A choice in `0..n` (0 once the tape is exhausted).
    fn pick(&mut self, n: usize) -> usize {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        if n == 0 { 0 } else { v as usize % n }
    }

    /// True with probability about `percent`%; false when exhausted.
    fn chance(&mut self, percent: usize) -> bool {
        let v = self.data.get(self.pos).copied();
        self.pos += 1;
        v.is_some_and(|v| (v as usize % 100) < percent)
    }

    fn item<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.pick(items.len())]
    }
}

/// Static types of generated expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Bool,
    Int,
    Float,
    Str,
    Addr,
    Time,
    Dur,
    ListStr,
    ListAddr,
    ListInt,
}

/// Zones for `local()`: with and without daylight saving, a half-hour
/// offset, and a 30-minute DST shift (Lord Howe).
const ZONES: &[&str] = &[
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "UTC",
    "Australia/Lord_Howe",
];

/// Literals for `time()`: around a DST change, the epoch, past 2^31.
const TIMES: &[&str] = &[
    "2024-12-20T18:00:00Z",
    "2024-03-31T03:00:00+02:00",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
];

const STRINGS: &[&str] = &[
    "",
    "invoice",
    "INVOICE",
    "example.com",
    "Example.COM",
    "re:",
    "ticket",
    "a",
    "e",
    "ü",
    "ß",
    "SS",
    ".pdf",
    "text/plain",
    "@",
    " ",
    "yes",
    "test",
    "python",
    "the",
    "Hello",
    "payment failed",
    "\\u{e9}",
    "\\\"q\\\"",
    "\\n",
];

const HEADERS: &[&str] = &[
    "Subject",
    "X-Mailer",
    "Received",
    "List-Id",
    "X-Spam",
    "Content-Type",
    "From",
    "to",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "Precedence",
    "Authentication-Results",
    "X-Nothing",
    "MIME-Version",
];

/// Regexes with their number of capture groups (without group 0).
const REGEXES: &[(&str, usize)] = &[
    ("/invoice/i", 0),
    ("/ticket #(\\d+)/i", 1),
    ("/(\\w+)@([\\w.]+)/", 2),
    ("/^re:/i", 0),
    ("/\\d{2}/", 0),
    ("/(e)(x)?/", 2),
    ("/é|ü/", 0),
    ("/[A-Z]{3,}/", 0),
    ("/^$/", 0),
    ("/(?s)a.b/", 0),
    ("/^line$/m", 0),
    ("/t e s t/x", 0),
    ("/(\\w+)/", 1),
    ("/(invoice|ticket) #?\\d/i", 0),
    ("/r[eé]sum[eé]|caf[eé]/i", 0),
    ("/(ab|cd)e/i", 0),
    ("/(?P<user>\\w+)@(?P<host>[\\w.]+)/", 2),
];

const TAGS: &[&str] = &["vip", "billing", "junk", "x", "Ü"];

/// What a rule's `then` may see: the capture name and its group count.
#[derive(Clone, Copy)]
struct Bound {
    groups: usize,
    /// The regex names its groups `user` and `host` (`m["user"]`).
    named: bool,
}

/// The state of generating one ruleset.
struct Gen<'t, 'a> {
    tape: &'t mut Tape<'a>,
    /// Names of the rules that run before the one being generated.
    earlier: Vec<String>,
    /// Parameters in scope (inside a `fn` body): name and type.
    params: Vec<(&'static str, T)>,
    /// Whether user functions may be called (not inside their bodies).
    call_fns: bool,
    /// Whether the stdlib modules were imported.
    bulk: bool,
    /// Captures visible in the actions being generated.
    captures: Option<Bound>,
    /// Whether `matches … as` may bind here, and whether it did.
    may_bind: bool,
    bound: Option<Bound>,
    /// Inside a `some`/`every` body (lambdas do not nest).
    in_lambda: bool,
}

/// A random ruleset as Flow text.
pub fn ruleset(tape: &mut Tape<'_>) -> String {
    let mut out = String::new();
    let mut g = Gen {
        tape,
        earlier: Vec::new(),
        params: Vec::new(),
        call_fns: false,
        bulk: false,
        captures: None,
        may_bind: false,
        bound: None,
        in_lambda: false,
    };
    g.bulk = g.tape.chance(30);
    if g.bulk {
        out.push_str("import \"stdlib/bulk\"\n");
    }
    if g.tape.chance(10) {
        out.push_str("import \"stdlib/spam\"\n");
    }
    out.push_str(
        "let words = [\"invoice\", \"Ticket\", \"ünïcödé\", \"python\"]\n\
         let nets = [10.0.0.0/8, 192.0.2.0/24, 2001:db8::/32, 127.0.0.1]\n\
         let limit = 5\n\
         let greeting = \"hello\"\n\
         let re_ticket = /ticket #(\\d+)/i\n\
         let trusted_authserv = [\"mx.example.com\"]\n\
         map routes = {\"Ticket\": \"support\", \"invoice\": \"billing\", \"example.com\": \"\"}\n",
    );
    // User functions: bodies use their parameters and fields.
    g.params = vec![("s", T::Str), ("n", T::Int)];
    let body = g.expr(T::Bool, 2);
    let _ = writeln!(out, "fn pred(s: string, n: int) = {body}");
    g.params = vec![("a", T::Addr)];
    let body = g.expr(T::Str, 2);
    let _ = writeln!(out, "fn label(a: address) = {body}");
    g.params = vec![("l", T::ListStr)];
    let body = g.expr(T::Int, 2);
    let _ = writeln!(out, "fn size_of(l: list<string>) = {body}");
    g.params.clear();
    g.call_fns = true;
    for t in 0..2 {
        let subject = g.string_arg(1);
        let body = g.string_arg(1);
        let _ = writeln!(
            out,
            "template t{t} {{\n  subject = {subject}\n  body = {body}\n}}"
        );
    }
    // Priorities first, so `matched()` can name rules that run earlier.
    let count = 1 + g.tape.pick(6);
    let priorities: Vec<Option<i64>> = (0..count)
        .map(|_| match g.tape.pick(6) {
            0 | 1 => None,
            2 => Some(10),
            3 => Some(-5),
            4 => Some(200),
            _ => Some(100),
        })
        .collect();
    let key = |i: usize| (priorities[i].unwrap_or(100), i);
    for (i, priority) in priorities.iter().enumerate() {
        g.earlier = (0..count)
            .filter(|&j| key(j) < key(i))
            .map(|j| format!("r{j}"))
            .collect();
        out.push_str(&g.rule(i, *priority));
    }
    out
}

impl Gen<'_, '_> {
    fn rule(&mut self, i: usize, priority: Option<i64>) -> String {
        let mut head = format!("rule r{i}");
        if let Some(p) = priority {
            let _ = write!(head, " priority {p}");
        }
        if self.tape.chance(15) {
            head.push_str(" shadow");
        }
        let mut text = format!("{head} {{\n");
        let has_when = !self.tape.chance(15);
        self.bound = None;
        if has_when {
            self.may_bind = true;
            let cond = self.condition(3);
            self.may_bind = false;
            let _ = writeln!(text, "  when {cond}");
        }
        self.captures = self.bound;
        let then = self.block(2);
        let _ = writeln!(text, "  then {then}");
        self.captures = None;
        if has_when && self.tape.chance(30) {
            let otherwise = self.block(2);
            let _ = writeln!(text, "  else {otherwise}");
        }
        text.push_str("}\n");
        text
    }

    /// A `when` condition: a chain of `and`s whose top-level comparisons
    /// may bind captures, or any boolean expression.
    fn condition(&mut self, depth: usize) -> String {
        let n = 1 + self.tape.pick(3);
        let parts: Vec<String> = (0..n).map(|_| self.bool_expr(depth)).collect();
        parts.join(" and ")
    }

    /// An expression of type `t`, parenthesized when composite.
    fn expr(&mut self, t: T, depth: usize) -> String {
        match t {
            T::Bool => format!("({})", self.bool_expr_inner(depth, false)),
            T::Int => self.int_expr(depth),
            T::Float => self.float_expr(depth),
            T::Str => self.str_expr(depth),
            T::Addr => self.addr_expr(depth),
            T::Time => self.time_expr(depth),
            T::Dur => self.dur_expr(depth),
            T::ListStr => self.list_str_expr(depth),
            T::ListAddr => self
                .tape
                .item(&["from", "to", "cc", "reply_to", "sender", "envelope.to"])
                .to_string(),
            T::ListInt => self.list_int_expr(depth),
        }
    }

    fn param(&mut self, t: T) -> Option<String> {
        let names: Vec<&str> = self
            .params
            .iter()
            .filter(|(_, pt)| *pt == t)
            .map(|(n, _)| *n)
            .collect();
        (!names.is_empty()).then(|| names[self.tape.pick(names.len())].to_string())
    }

    fn bool_expr(&mut self, depth: usize) -> String {
        self.bool_expr_inner(depth, self.may_bind)
    }

    fn bool_expr_inner(&mut self, depth: usize, may_bind: bool) -> String {
        let choices = if depth == 0 { 4 } else { 10 };
        match self.tape.pick(choices) {
            0 => self.comparison(depth.saturating_sub(1), may_bind),
            1 => self.comparison(depth.saturating_sub(1), false),
            2 => match self.tape.pick(7) {
                0 => self.tape.item(&["true", "false", "tls"]).to_string(),
                1 if !self.earlier.is_empty() => {
                    let i = self.tape.pick(self.earlier.len());
                    format!("matched({})", self.earlier[i])
                }
                2 if self.call_fns => {
                    let s = self.expr(T::Str, depth.saturating_sub(1));
                    let n = self.expr(T::Int, depth.saturating_sub(1));
                    format!("pred({s}, {n})")
                }
                3 if self.bulk && self.call_fns => self
                    .tape
                    .item(&["is_bulk()", "is_list()", "is_autoreply()"])
                    .to_string(),
                4 => {
                    let key = self.string_arg(depth.saturating_sub(1));
                    let window = self.tape.item(&["1h", "1d", "30s"]);
                    format!("duplicate({key}, {window})")
                }
                5 => "attachments.encrypted == true".to_string(),
                _ => format!("score >= {}", self.tape.pick(6)),
            },
            3 => {
                let t = self.tape.item(&["l", "s"]);
                let e = if t == "l" {
                    self.expr(T::ListStr, depth.saturating_sub(1))
                } else {
                    self.expr(T::Str, depth.saturating_sub(1))
                };
                format!("{e} exists")
            }
            4 | 5 => {
                let a = self.bool_expr_inner(depth - 1, may_bind);
                let b = self.bool_expr_inner(depth - 1, may_bind);
                format!("(({a}) and ({b}))")
            }
            6 | 7 => {
                let a = self.bool_expr_inner(depth - 1, false);
                let b = self.bool_expr_inner(depth - 1, false);
                format!("(({a}) or ({b}))")
            }
            8 => format!("(not ({}))", self.bool_expr_inner(depth - 1, false)),
            _ => self.comparison(depth - 1, may_bind),
        }
    }

    /// A comparison or test with both sides well typed.
    fn comparison(&mut self, depth: usize, may_bind: bool) -> String {
        match self.tape.pick(12) {
            11 if !self.in_lambda => self.quantified(depth),
            9 => {
                let (lhs, list) = if self.tape.chance(30) {
                    (self.list_str_expr(depth), true)
                } else {
                    (self.str_expr(depth), false)
                };
                let all = if list && self.tape.chance(30) {
                    "all "
                } else {
                    ""
                };
                let rhs = match self.tape.pick(4) {
                    0 => "routes".to_string(),
                    1 => self.list_str_expr(depth),
                    _ => self
                        .tape
                        .item(&[
                            "[\"example.com\", \"Example.ORG.\", \".test\"]",
                            "[\"com\"]",
                            "[\"\", \"xn--bcher-kva.example\"]",
                        ])
                        .to_string(),
                };
                format!("{all}{lhs} under {rhs}")
            }
            10 => {
                let (lhs, list) = self.text_side(depth);
                let all = if list && self.tape.chance(30) {
                    "all "
                } else {
                    ""
                };
                format!("{all}{lhs} in routes")
            }
            // Text equality and substring tests, any on either side.
            0..=2 => {
                let (lhs, list) = self.text_side(depth);
                let op = self.tape.item(&[
                    "==",
                    "!=",
                    "contains",
                    "starts_with",
                    "ends_with",
                    "contains any",
                ]);
                let rhs = if op.ends_with("any") || self.tape.chance(30) {
                    self.list_str_expr(depth)
                } else {
                    self.expr(T::Str, depth)
                };
                let all = if list && self.tape.chance(30) {
                    "all "
                } else {
                    ""
                };
                format!("{all}{lhs} {op} {rhs}")
            }
            3 => {
                let (lhs, list) = self.text_side(depth);
                let (re, groups) = if self.tape.chance(20) {
                    ("re_ticket", 1)
                } else if may_bind && self.tape.chance(15) {
                    REGEXES[REGEXES.len() - 1]
                } else {
                    REGEXES[self.tape.pick(REGEXES.len())]
                };
                let all = if list && self.tape.chance(20) {
                    "all "
                } else {
                    ""
                };
                if may_bind && self.bound.is_none() && self.tape.chance(60) {
                    let named = re.contains("?P<");
                    self.bound = Some(Bound { groups, named });
                    format!("{all}{lhs} matches {re} as m")
                } else {
                    format!("{all}{lhs} matches {re}")
                }
            }
            4 => {
                let (lhs, list) = self.text_side(depth);
                let all = if list && self.tape.chance(30) {
                    "all "
                } else {
                    ""
                };
                let rhs = if self.tape.chance(40) {
                    "words".to_string()
                } else {
                    self.list_str_expr(depth)
                };
                format!("{all}{lhs} in {rhs}")
            }
            5 => {
                let rhs = if self.tape.chance(50) {
                    "nets".to_string()
                } else {
                    self.tape
                        .item(&["[192.0.2.0/25, ::1]", "[10.1.2.3]", "[0.0.0.0/0]", "[::/0]"])
                        .to_string()
                };
                format!("client.ip in {rhs}")
            }
            6 => {
                let op = self.tape.item(&["<", "<=", ">", ">=", "==", "!="]);
                match self.tape.pick(4) {
                    0 => {
                        let lhs = self.expr(T::Time, depth);
                        let rhs = self.expr(T::Time, depth);
                        format!("{lhs} {op} {rhs}")
                    }
                    1 => {
                        let lhs = self.expr(T::Dur, depth);
                        let rhs = self.expr(T::Dur, depth);
                        format!("{lhs} {op} {rhs}")
                    }
                    2 => {
                        let lhs = self.expr(T::ListInt, depth);
                        let rhs = self.expr(T::Int, depth);
                        let all = if self.tape.chance(30) { "all " } else { "" };
                        format!("{all}{lhs} {op} {rhs}")
                    }
                    _ => {
                        let lhs = self.expr(T::Float, depth);
                        let rhs = self.expr(T::Int, depth);
                        format!("{lhs} {op} {rhs}")
                    }
                }
            }
            7 => {
                let n = self.expr(T::Int, depth);
                let list = self.tape.item(&["[1, 2, 3]", "[0, 2.5]", "[limit]"]);
                format!("{n} in {list}")
            }
            _ => {
                let op = self.tape.item(&["<", "<=", ">", ">=", "==", "!="]);
                let lhs = self.expr(T::Int, depth);
                let rhs = self.expr(T::Int, depth);
                format!("{lhs} {op} {rhs}")
            }
        }
    }

    /// `some(LIST, x => BODY)` or `every(...)` over attachments, addresses
    /// or strings, the body testing the element (and whatever else).
    fn quantified(&mut self, depth: usize) -> String {
        let word = self.tape.item(&["some", "every"]);
        self.in_lambda = true;
        // A lambda cannot read the captures of `matches … as`.
        let captures = self.captures.take();
        let (list, var, test) = match self.tape.pick(3) {
            0 => {
                let member = self.tape.item(&["name", "type"]);
                let op = self.tape.item(&["ends_with", "==", "!=", "contains"]);
                let rhs = self.str_expr(depth);
                let size = self.int_expr(0);
                let test = if self.tape.chance(50) {
                    format!("a.{member} {op} {rhs} and a.size > {size}")
                } else {
                    format!("a.{member} {op} {rhs}")
                };
                ("attachments".to_string(), "a", test)
            }
            1 => {
                let list = self.expr(T::ListAddr, depth);
                let member = self.tape.item(&["domain", "local", "detail", "address"]);
                let rhs = self.str_expr(depth);
                (list, "t", format!("t.{member} == {rhs}"))
            }
            _ => {
                let list = self.list_str_expr(depth);
                let op = self.tape.item(&["contains", "starts_with", "==", "under"]);
                let rhs = self.str_expr(depth);
                (list, "s", format!("{var} {op} {rhs}", var = "s"))
            }
        };
        let body = if self.tape.chance(30) {
            let other = self.bool_expr_inner(depth.saturating_sub(1), false);
            format!("{test} or ({other})")
        } else {
            test
        };
        self.in_lambda = false;
        self.captures = captures;
        format!("{word}({list}, {var} => {body})")
    }

    /// The left side of a text test, and whether it is a list.
    fn text_side(&mut self, depth: usize) -> (String, bool) {
        match self.tape.pick(4) {
            0 => (self.expr(T::Str, depth), false),
            1 => (self.expr(T::ListStr, depth), true),
            2 => (self.expr(T::ListAddr, depth), true),
            _ => (self.expr(T::Addr, depth), false),
        }
    }

    fn int_expr(&mut self, depth: usize) -> String {
        let choices = if depth == 0 { 5 } else { 12 };
        let d = depth.saturating_sub(1);
        match self.tape.pick(choices) {
            0 => self
                .tape
                .item(&["0", "1", "3", "42", "10K", "limit"])
                .to_string(),
            1 => self.tape.item(&["size", "client.port"]).to_string(),
            2 => self.param(T::Int).unwrap_or_else(|| "1".to_string()),
            3 => format!(
                "{}.{}",
                self.time_expr(0),
                self.tape
                    .item(&["hour", "minute", "second", "day", "month", "year"])
            ),
            4 => format!("len({})", self.str_expr(0)),
            5 => format!("count({})", self.any_list(d)),
            6 => format!("({} + {})", self.int_expr(d), self.int_expr(d)),
            7 => format!("({} - {})", self.int_expr(d), self.int_expr(d)),
            8 => format!("(-{})", self.int_expr(d)),
            9 => format!("{}[{}]", self.list_int_expr(d), self.tape.pick(3)),
            10 => {
                let key = self.string_arg(d);
                let window = self.tape.item(&["1h", "1d", "30s"]);
                format!("rate({key}, {window})")
            }
            _ if self.call_fns => format!("size_of({})", self.list_str_expr(d)),
            _ => format!("{}.seconds", self.dur_expr(d)),
        }
    }

    fn float_expr(&mut self, depth: usize) -> String {
        let choices = if depth == 0 { 3 } else { 8 };
        let d = depth.saturating_sub(1);
        match self.tape.pick(choices) {
            0 => self.tape.item(&["score", "2.5", "0.0"]).to_string(),
            1 => format!("number({})", self.str_expr(0)),
            2 => format!(
                "{}.{}",
                self.dur_expr(0),
                self.tape.item(&["hours", "days"])
            ),
            3 => format!("max({}, {})", self.float_expr(d), self.int_expr(d)),
            4 => format!("min({}, {})", self.int_expr(d), self.float_expr(d)),
            5 => format!("({} + {})", self.float_expr(d), self.int_expr(d)),
            6 => format!("({} - {})", self.float_expr(d), self.float_expr(d)),
            _ => format!("(-{})", self.float_expr(d)),
        }
    }

    fn str_expr(&mut self, depth: usize) -> String {
        let choices = if depth == 0 { 5 } else { 15 };
        let d = depth.saturating_sub(1);
        match self.tape.pick(choices) {
            0 => format!("\"{}\"", self.tape.item(STRINGS)),
            1 => self
                .tape
                .item(&[
                    "subject",
                    "message_id",
                    "helo",
                    "client.name",
                    "auth.user",
                    "greeting",
                ])
                .to_string(),
            2 => self
                .tape
                .item(&["body", "body.html", "body.lines", "body.raw"])
                .to_string(),
            3 => self.param(T::Str).unwrap_or_else(|| "subject".to_string()),
            4 => {
                let member = self
                    .tape
                    .item(&["address", "local", "domain", "detail", "name"]);
                format!("{}.{member}", self.addr_expr(0))
            }
            5 => format!(
                "{}({})",
                self.tape.item(&["lower", "upper", "trim"]),
                self.str_expr(d)
            ),
            6 => format!(
                "replace({}, {}, {})",
                self.str_expr(d),
                self.str_expr(0),
                self.str_expr(0)
            ),
            7 => format!("first({})", self.list_str_expr(d)),
            8 => format!("join({}, \", \")", self.list_str_expr(d)),
            9 => format!("({} + {})", self.str_expr(d), self.str_expr(d)),
            10 => self.string_arg(d),
            11 => format!("{}[{}]", self.list_str_expr(d), self.tape.pick(3)),
            12 => format!("{}.weekday", self.time_expr(0)),
            13 => format!("routes[{}]", self.str_expr(d)),
            _ if self.call_fns => format!("label({})", self.addr_expr(d)),
            _ => format!("\"{}\"", self.tape.item(STRINGS)),
        }
    }

    fn addr_expr(&mut self, depth: usize) -> String {
        match self.tape.pick(if depth == 0 { 2 } else { 4 }) {
            0 => "envelope.from".to_string(),
            1 => self
                .param(T::Addr)
                .unwrap_or_else(|| "envelope.from".to_string()),
            2 => format!(
                "{}[{}]",
                self.tape.item(&[
                    "from",
                    "to",
                    "cc",
                    "reply_to",
                    "sender",
                    "envelope.to",
                    "addresses(header(\"Cc\").raw)",
                    "addresses(header(\"To\"))",
                ]),
                self.tape.pick(3)
            ),
            _ => "recipient".to_string(),
        }
    }

    fn time_expr(&mut self, depth: usize) -> String {
        match self.tape.pick(if depth == 0 { 4 } else { 6 }) {
            0 => "date".to_string(),
            1 => "now".to_string(),
            2 => format!(
                "local({}, \"{}\")",
                self.tape.item(&["now", "date"]),
                self.tape.item(ZONES)
            ),
            3 => format!("time(\"{}\")", self.tape.item(TIMES)),
            4 => format!("({} + {})", self.time_expr(0), self.dur_expr(0)),
            _ => format!("({} - {})", self.time_expr(0), self.dur_expr(0)),
        }
    }

    fn dur_expr(&mut self, depth: usize) -> String {
        match self.tape.pick(if depth == 0 { 2 } else { 5 }) {
            0 => self
                .tape
                .item(&["1h", "1d", "30s", "5m", "400d"])
                .to_string(),
            1 => "(now - date)".to_string(),
            2 => format!("({} + {})", self.dur_expr(0), self.dur_expr(0)),
            3 => format!("({} - {})", self.dur_expr(0), self.dur_expr(0)),
            _ => format!("(-{})", self.dur_expr(0)),
        }
    }

    fn list_str_expr(&mut self, depth: usize) -> String {
        let choices = if depth == 0 { 4 } else { 8 };
        let d = depth.saturating_sub(1);
        match self.tape.pick(choices) {
            0 => {
                let n = self.tape.pick(4);
                let items: Vec<String> = (0..n)
                    .map(|_| format!("\"{}\"", self.tape.item(STRINGS)))
                    .collect();
                format!("[{}]", items.join(", "))
            }
            1 => {
                let member = self
                    .tape
                    .item(&["address", "local", "domain", "detail", "name"]);
                let list = self.expr(T::ListAddr, 0);
                format!("{list}.{member}")
            }
            2 => {
                let raw = if self.tape.chance(25) { ".raw" } else { "" };
                format!("header(\"{}\"){raw}", self.tape.item(HEADERS))
            }
            3 => self
                .tape
                .item(&[
                    "attachments.name",
                    "attachments.type",
                    "words",
                    "attachments.archive",
                ])
                .to_string(),
            7 if self.tape.chance(50) => {
                let member = self.tape.item(&[
                    "method",
                    "result",
                    "policy",
                    "reason",
                    "header.from",
                    "header.d",
                    "smtp.mailfrom",
                ]);
                let trusted = self
                    .tape
                    .item(&["trusted_authserv", "[\"MX.example.com\", \"\"]"]);
                format!("auth_results({trusted}).{member}")
            }
            4 => self
                .param(T::ListStr)
                .unwrap_or_else(|| "words".to_string()),
            5 => format!("split({}, {})", self.str_expr(d), self.str_expr(0)),
            6 => {
                let a = self.str_expr(d);
                let b = self.str_expr(d);
                format!("[{a}, {b}]")
            }
            _ => format!("header({})", self.str_expr(d)),
        }
    }

    fn list_int_expr(&mut self, depth: usize) -> String {
        match self.tape.pick(if depth == 0 { 2 } else { 3 }) {
            0 => "attachments.size".to_string(),
            1 => "[1, 2, 3]".to_string(),
            _ => format!("[{}, {}]", self.int_expr(0), self.int_expr(0)),
        }
    }

    fn any_list(&mut self, depth: usize) -> String {
        match self.tape.pick(4) {
            0 => self.list_str_expr(depth),
            1 => self.expr(T::ListAddr, depth),
            2 => "attachments".to_string(),
            _ => self.list_int_expr(depth),
        }
    }

    /// A string literal with zero or more interpolations (of any type
    /// that renders, captures included where visible).
    fn string_arg(&mut self, depth: usize) -> String {
        let mut s = String::from("\"");
        let n = self.tape.pick(3);
        s.push_str(self.tape.item(&["", "x-", "Re: ", "ü "]));
        for _ in 0..n {
            let inner = match self.tape.pick(10) {
                0 => self.str_expr(depth),
                1 => self.int_expr(depth),
                2 => self.float_expr(depth),
                3 => self.addr_expr(0),
                4 => self.expr(T::ListAddr, 0),
                5 => self.list_str_expr(depth),
                6 => self.time_expr(0),
                7 => self.dur_expr(0),
                8 => "client.ip".to_string(),
                _ => match self.captures {
                    Some(b) if b.named && self.tape.chance(50) => {
                        format!("m[\"{}\"]", self.tape.item(&["user", "host"]))
                    }
                    Some(b) => format!("m[{}]", self.tape.pick(b.groups + 1)),
                    None => "score".to_string(),
                },
            };
            let _ = write!(s, "${{{inner}}}{}", self.tape.item(&["", " ", "/", ","]));
        }
        s.push('"');
        s
    }

    /// A `then`/`else` body: one action or a block.
    fn block(&mut self, depth: usize) -> String {
        let n = self.tape.pick(4);
        if n == 0 {
            return self.actions(depth, 1).join("");
        }
        let stmts = self.actions(depth, n);
        format!("{{\n    {}\n  }}", stmts.join("\n    "))
    }

    /// `n` statements; the last may end evaluation.
    fn actions(&mut self, depth: usize, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..n {
            let last = i + 1 == n;
            if depth > 0 && self.tape.chance(15) {
                let cond = self.bool_expr_inner(depth - 1, false);
                let k = 1 + self.tape.pick(2);
                let then = self.actions(depth - 1, k).join("; ");
                let mut s = format!("if {cond} {{ {then} }}");
                if self.tape.chance(50) {
                    let otherwise = self.actions(depth - 1, 1).join("; ");
                    let _ = write!(s, " else {{ {otherwise} }}");
                }
                out.push(s);
            } else if last && self.tape.chance(35) {
                out.push(self.verdict());
            } else if self.captures.is_some_and(|b| b.named) && self.tape.chance(40) {
                let group = self.tape.item(&["user", "host"]);
                out.push(format!("add_header \"X-Named\" m[\"{group}\"]"));
            } else {
                out.push(self.action());
            }
        }
        out
    }

    fn verdict(&mut self) -> String {
        let text = self.string_arg(1);
        match self.tape.pick(7) {
            0 => "accept".to_string(),
            1 => format!("reject {text}"),
            2 => format!(
                "reject {} {}",
                self.tape.item(&["550", "554", "551"]),
                if self.tape.chance(50) {
                    format!("\"5.7.{}\" {text}", self.tape.pick(9))
                } else {
                    text
                }
            ),
            3 => "tempfail".to_string(),
            4 => format!(
                "tempfail {} \"4.2.{}\" {text}",
                self.tape.item(&["450", "451"]),
                self.tape.pick(3)
            ),
            5 => "discard".to_string(),
            _ => {
                if self.tape.chance(30) {
                    "stop".to_string()
                } else {
                    format!("quarantine {text}")
                }
            }
        }
    }

    fn action(&mut self) -> String {
        let header = self
            .tape
            .item(&["\"X-Weir\"", "\"X-Mailer\"", "\"Subject\""]);
        match self.tape.pick(16) {
            0 => format!("tag \"{}\"", self.tape.item(TAGS)),
            1 => format!("tag {}", self.string_arg(1)),
            2 => format!(
                "score {}{}",
                self.tape.item(&["+", "-"]),
                self.tape
                    .item(&["1", "2.5", "0", "10", "0.7", "1.4", "1.9", "0.1", "0.0005"])
            ),
            3 => format!("score ({})", self.float_expr(1)),
            4 => format!("add_header {header} {}", self.string_arg(1)),
            5 => format!("set_header {header} {}", self.string_arg(1)),
            6 => format!("remove_header {header}"),
            7 => format!("prepend_subject {}", self.string_arg(1)),
            8 => format!(
                "{} {}",
                self.tape.item(&["add_rcpt", "remove_rcpt", "redirect"]),
                self.string_arg(1)
            ),
            9 => format!("fileinto {}", self.string_arg(1)),
            10 => "flag \"\\\\Seen\"".to_string(),
            11 => "keep".to_string(),
            12 => {
                let mut s = format!("notify {}", self.tape.item(&["\"slack\"", "\"ops\""]));
                if self.tape.chance(60) {
                    let n = self.tape.pick(3);
                    let pairs: Vec<String> = (0..n)
                        .map(|k| format!("k{k}: {}", self.string_arg(1)))
                        .collect();
                    let _ = write!(s, " with {{{}}}", pairs.join(", "));
                }
                if self.tape.chance(50) {
                    let _ = write!(s, " template t{}", self.tape.pick(2));
                }
                s
            }
            13 => {
                let every = self.tape.item(&["", " every 7d", " every 1h"]);
                format!("reply template t{}{every}", self.tape.pick(2))
            }
            14 => match self.captures {
                Some(b) if b.named && self.tape.chance(50) => format!(
                    "add_header \"X-Cap\" m[\"{}\"]",
                    self.tape.item(&["user", "host"])
                ),
                Some(b) => format!("add_header \"X-Cap\" m[{}]", self.tape.pick(b.groups + 1)),
                None => format!("log {}", self.string_arg(1)),
            },
            _ => format!("log {}", self.string_arg(1)),
        }
    }
}
