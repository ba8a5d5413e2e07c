//! The page shell every console page shares: head (our stylesheet and
//! script, the CSRF token for the script's requests), navigation, role
//! and logout; and the login page.

use maud::{DOCTYPE, Markup, html};

use crate::access::{Caller, Role};

/// The pages of the navigation: path, label.
const NAV: &[(&str, &str)] = &[
    ("/console/", "Overview"),
    ("/console/live", "Live"),
    ("/console/search", "Search"),
    ("/console/quarantine", "Quarantine"),
    ("/console/rules", "Rules"),
    ("/console/playground", "Playground"),
    ("/console/outbox", "Outbox"),
];

/// What a page adds to the shell.
pub struct Page<'a> {
    /// The `<title>` and `<h1>`.
    pub title: &'a str,
    /// The navigation entry to mark current.
    pub nav: &'a str,
    /// The `data-page` of `<body>`: which part of `console.js` runs.
    pub script: &'a str,
    /// Whether the page draws charts (loads uPlot).
    pub charts: bool,
}

impl<'a> Page<'a> {
    /// A page titled as its navigation entry `name`, without charts.
    pub fn section(name: &'a str, script: &'a str) -> Self {
        Page {
            title: name,
            nav: name,
            script,
            charts: false,
        }
    }
}

/// A whole page for `caller`.
pub fn page(caller: &Caller, p: &Page<'_>, content: Markup) -> Markup {
    let admin = caller.role == Role::Admin;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="csrf-token" content=(caller.csrf.as_deref().unwrap_or(""));
                title { (p.title) " · Weir" }
                link rel="stylesheet" href="/console/assets/console.css";
                @if p.charts {
                    link rel="stylesheet" href="/console/assets/uPlot.min.css";
                    script src="/console/assets/uPlot.iife.min.js" defer {}
                }
                script src="/console/assets/console.js" defer {}
            }
            body data-page=(p.script) data-role=(caller.role.as_str()) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Weir" }
                    nav aria-label="Console" {
                        ul {
                            @for (href, label) in NAV {
                                li {
                                    @if *label == p.nav {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    span.role title="Your role" {
                        @if admin { "admin" } @else { "read-only" }
                    }
                    form method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(caller.csrf.as_deref().unwrap_or(""));
                        button type="submit" { "Log out" }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (p.title) }
                    (content)
                }
            }
        }
    }
}

/// The login page, with an error after a wrong token.
pub fn login_page(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { "Log in · Weir" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body.login data-page="login" {
                main #main {
                    h1 { "Weir console" }
                    form method="post" action="/console/login" {
                        @if let Some(e) = error {
                            p.error role="alert" { (e) }
                        }
                        label for="token" { "API token" }
                        input #token type="password" name="token" autocomplete="current-password"
                            required autofocus;
                        p.hint {
                            "The admin token (" code { "[http] token_file" } ") or the read-only one ("
                            code { "[http] readonly_token_file" } ")."
                        }
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A verdict as a badge.
pub fn verdict(v: &str) -> Markup {
    html! { span class=(format!("verdict v-{v}")) { (v) } }
}

/// A JSON value as text (`""` for null).
pub fn text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| text(Some(x)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// Flow source with its tokens coloured (the language server's lexer).
pub fn highlight_flow(source: &str) -> Markup {
    use weir_grammar::lexer::{Token, tokens};
    html! {
        @for (token, span) in tokens(source) {
            @let t = source.get(span.start..span.end).unwrap_or("");
            @match token {
                Token::Comment => span.t-com { (t) },
                Token::String | Token::TripleString => span.t-str { (t) },
                Token::Regex => span.t-re { (t) },
                Token::Keyword => span.t-kw { (t) },
                Token::Number | Token::Ipv6 => span.t-num { (t) },
                _ => (t),
            }
        }
    }
}
