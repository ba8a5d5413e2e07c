//! `weir import sieve` (docs/sieve.md): every script of `tests/sieve/`
//! converts to Flow that `weir check` accepts, in `weir fmt` layout (the
//! expected text beside each script, `UPDATE_EXPECT=1` regenerates), with
//! the exit status and notes of docs/cli.md; and the converted Flow decides
//! as Dovecot Pigeonhole's `sieve-test` does, message by message, except
//! for the differences docs/sieve.md lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TempDir, golden, root, stderr, stdout, temp_dir, weir};

/// The envelope both engines see.
const SENDER: &str = "sender@lists.example.net";
const RECIPIENT: &str = "alex@example.com";

/// The shared corpus, generated once: the tests here ask for it at the
/// same time, and the generators write it on first use.
fn corpus_dir() -> PathBuf {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    weir_benches::corpus_dir()
}

fn sieve_dir() -> PathBuf {
    root().join("tests/sieve")
}

fn scripts() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(sieve_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sieve"))
        .collect();
    out.sort();
    assert!(out.len() >= 15, "the hand-written scripts");
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn every_script_converts_to_checked_formatted_flow() {
    let dir = temp_dir("sieve-check");
    let mut failures = Vec::new();
    for script in scripts() {
        let out = weir(&["import", "sieve", "--allow-partial", &rel(&script)], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            script.display(),
            stderr(&out)
        );
        let flow = stdout(&out);
        let expected = script.with_extension("flow");
        if let Err(e) = golden(&expected, &flow) {
            failures.push(e);
        }
        let file = dir.join(script.file_name().unwrap()).with_extension("flow");
        std::fs::write(&file, &flow).unwrap();
        let check = weir(&["check", file.to_str().unwrap()], None);
        if check.status.code() != Some(0) {
            failures.push(format!(
                "{}: weir check\n{}",
                script.display(),
                stderr(&check)
            ));
        }
        let fmt = weir(&["fmt", "--check", file.to_str().unwrap()], None);
        if fmt.status.code() != Some(0) {
            failures.push(format!("{}: not in weir fmt layout", script.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_exit_status_says_whether_the_conversion_is_exact() {
    let exact = weir(&["import", "sieve", "tests/sieve/roundcube.sieve"], None);
    assert_eq!(exact.status.code(), Some(0), "{}", stderr(&exact));
    let lossy = weir(&["import", "sieve", "tests/sieve/unsupported.sieve"], None);
    assert_eq!(lossy.status.code(), Some(1));
    let notes = stderr(&lossy);
    assert!(
        notes.contains("tests/sieve/unsupported.sieve:10:4: not converted: test `mailboxexists`"),
        "{notes}"
    );
    assert!(stdout(&lossy).contains("# not converted: tests/sieve/unsupported.sieve:10:4"));
    let partial = weir(
        &[
            "import",
            "sieve",
            "--allow-partial",
            "tests/sieve/unsupported.sieve",
        ],
        None,
    );
    assert_eq!(partial.status.code(), Some(0));
    assert_eq!(stdout(&partial), stdout(&lossy));
}

#[test]
fn stdin_goes_to_stdout_and_dash_o_writes_a_file() {
    let script = b"require \"fileinto\";\n# rule:[Move lists]\nif exists \"List-Id\" { fileinto \"Lists\"; }\n";
    let out = weir(&["import", "sieve"], Some(script));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("rule move_lists {"), "{text}");
    let dir = temp_dir("sieve-out");
    let file = dir.join("out.flow");
    let out = weir(
        &["import", "sieve", "-", "-o", file.to_str().unwrap()],
        Some(script),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn a_script_that_is_not_sieve_is_refused_with_its_line_and_column() {
    let dir = temp_dir("sieve-bad");
    let out_file = dir.join("out.flow");
    let out = weir(
        &["import", "sieve", "-o", out_file.to_str().unwrap()],
        Some(b"require \"fileinto\";\nif true {\n  fileinto \"x\"\n}\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("-:4:1: expected `;`"), "{err}");
    assert!(!out_file.exists(), "nothing written");
    let missing = weir(&["import", "sieve", "no/such.sieve"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read no/such.sieve"));
    let include = weir(
        &["import", "sieve"],
        Some(b"require \"include\";\ninclude \"absent\";\n"),
    );
    assert_eq!(include.status.code(), Some(2));
    assert!(
        stderr(&include).contains("-:2: include \"absent\""),
        "{}",
        stderr(&include)
    );
    let binary = weir(&["import", "sieve", "-"], Some(b"keep;\xff\xfe"));
    assert_eq!(binary.status.code(), Some(2));
}

// ------------------------------------------------------------ Pigeonhole

/// Dovecot Pigeonhole's `sieve-test`, run as an unprivileged user when the
/// tests run as root (it refuses root), over copies in a readable
/// directory.
struct Pigeonhole {
    dir: TempDir,
    as_nobody: bool,
}

fn pigeonhole(name: &str) -> Option<Pigeonhole> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("sieve-test").is_file()))
        .unwrap_or(false);
    if !found {
        let why = "sieve-test not found (apt-get install dovecot-sieve)";
        if std::env::var("WEIR_REQUIRE_SIEVE").as_deref() == Ok("1") {
            panic!("WEIR_REQUIRE_SIEVE=1 but {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| stdout(&o))
        .unwrap_or_default();
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("Maildir")).unwrap();
    std::fs::write(
        dir.join("dovecot.conf"),
        format!(
            "mail_location = maildir:{d}/Maildir\nplugin {{\n  sieve_extensions = +editheader +vacation-seconds +spamtest\n  \
             sieve_spamtest_status_type = score\n  sieve_spamtest_status_header = X-Spam-Score\n  \
             sieve_spamtest_max_value = 10\n  sieve = file:{d}/scripts\n}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::create_dir_all(dir.join("messages")).unwrap();
    Some(Pigeonhole {
        dir,
        as_nobody: uid.trim() == "0",
    })
}

impl Pigeonhole {
    /// Makes the copies readable by the unprivileged user.
    fn open_up(&self) {
        let _ = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&self.dir)
            .status();
    }

    fn command(&self, program: &str) -> Command {
        let mut c = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"]);
            c.arg(format!("HOME={}", self.dir.display())).arg(program);
            c
        } else {
            let mut c = Command::new(program);
            c.env("HOME", &self.dir);
            c
        };
        c.arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .current_dir(&self.dir);
        c
    }

    /// Whether `sievec` compiles the script.
    fn accepts(&self, script: &Path) -> bool {
        let out = self
            .command("sievec")
            .arg(script)
            .arg(self.dir.join("scripts/compiled.svbin"))
            .output()
            .expect("sievec runs");
        out.status.success()
    }

    fn run(&self, script: &Path, message: &Path) -> Outcome {
        let out = self
            .command("sieve-test")
            .args(["-f", SENDER, "-a", RECIPIENT, "-r", RECIPIENT])
            .arg(script)
            .arg(message)
            .output()
            .expect("sieve-test runs");
        assert!(
            out.status.success(),
            "sieve-test {} {}: {}",
            script.display(),
            message.display(),
            stderr(&out)
        );
        Outcome::from_sieve_test(&stdout(&out))
    }
}

/// What happened to a message, as both engines can say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Outcome {
    /// Each stored copy: the folder (Dovecot's `.` spelling, without
    /// `INBOX.`) and its flags, lower-case.
    stores: BTreeSet<String>,
    redirects: BTreeSet<String>,
    reject: bool,
    /// A vacation reply and its period in seconds.
    vacation: Option<u64>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.stores.iter().map(|s| format!("store {s}")).collect();
        parts.extend(self.redirects.iter().map(|r| format!("redirect {r}")));
        if self.reject {
            parts.push("reject".into());
        }
        if let Some(s) = self.vacation {
            parts.push(format!("vacation {s}s"));
        }
        if parts.is_empty() {
            parts.push("discard".into());
        }
        write!(f, "{}", parts.join(", "))
    }
}

fn folder(name: &str) -> String {
    let name = name.trim();
    let name = if name.len() > 6 && name[..6].eq_ignore_ascii_case("INBOX.") {
        &name[6..]
    } else {
        name
    };
    if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    name.replace('/', ".")
}

fn store(folder_name: &str, flags: &BTreeSet<String>) -> String {
    let f = folder(folder_name);
    if flags.is_empty() {
        f
    } else {
        format!(
            "{f} [{}]",
            flags.iter().cloned().collect::<Vec<_>>().join(" ")
        )
    }
}

impl Outcome {
    fn from_sieve_test(text: &str) -> Outcome {
        let mut o = Outcome::default();
        let mut stores: Vec<(String, BTreeSet<String>)> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(f) = t.strip_prefix("* store message in folder: ") {
                stores.push((f.to_string(), BTreeSet::new()));
            } else if let Some(flags) = t.strip_prefix("+ add IMAP flags: ") {
                if let Some(last) = stores.last_mut() {
                    last.1
                        .extend(flags.split_whitespace().map(str::to_lowercase));
                }
            } else if let Some(r) = t.strip_prefix("* redirect message to: ") {
                o.redirects
                    .insert(r.trim_matches(['<', '>']).to_lowercase());
            } else if t.starts_with("* reject message") {
                o.reject = true;
            } else if t.starts_with("* send vacation message") {
                o.vacation = Some(0);
            } else if let Some(s) = t.strip_prefix("=> seconds : ") {
                o.vacation = s.trim().parse().ok();
            }
        }
        o.stores = stores.iter().map(|(f, fl)| store(f, fl)).collect();
        o
    }

    fn from_decision(d: &serde_json::Value) -> Outcome {
        let mut o = Outcome::default();
        let actions = d["actions"].as_array().cloned().unwrap_or_default();
        fn of<'a>(
            actions: &'a [serde_json::Value],
            name: &'a str,
        ) -> impl Iterator<Item = &'a serde_json::Value> {
            actions.iter().filter(move |a| a["action"] == name)
        }
        match d["verdict"].as_str() {
            Some("reject") | Some("tempfail") => {
                o.reject = true;
                return o;
            }
            Some("discard") => return o,
            _ => {}
        }
        for a in of(&actions, "redirect").chain(of(&actions, "add_rcpt")) {
            o.redirects
                .insert(a["value"].as_str().unwrap_or_default().to_lowercase());
        }
        if of(&actions, "redirect").next().is_none() {
            let flags: BTreeSet<String> = of(&actions, "flag")
                .map(|a| a["value"].as_str().unwrap_or_default().to_lowercase())
                .collect();
            o.stores
                .insert(store(d["folder"].as_str().unwrap_or("INBOX"), &flags));
        }
        if let Some(r) = of(&actions, "reply").next() {
            o.vacation = r["every"].as_u64().or(Some(0));
        }
        o
    }
}

/// The differences docs/sieve.md lists: `| script | message | ...` rows of
/// its "Differences found against Pigeonhole" table.
fn listed_differences() -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(root().join("docs/sieve.md")).unwrap();
    let section = doc
        .split("## Differences found against Pigeonhole")
        .nth(1)
        .expect("docs/sieve.md lists the differences found against Pigeonhole");
    section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((
                cells.get(1)?.trim_matches('`').to_string(),
                cells.get(2)?.trim_matches('`').to_string(),
            ))
        })
        .collect()
}

/// The messages of the comparison: the hand-made edge cases, Python's
/// email test messages and the first synthetic ones.
fn messages(into: &Path) -> Vec<PathBuf> {
    let corpus = corpus_dir();
    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in [sieve_dir().join("messages"), corpus.join("cpython")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        sources.extend(files);
    }
    let mut synth: Vec<PathBuf> = std::fs::read_dir(corpus.join("synth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    synth.sort();
    sources.extend(synth.into_iter().take(40));
    sources
        .iter()
        .map(|src| {
            let parent = src.parent().unwrap().file_name().unwrap().to_string_lossy();
            let name = format!("{parent}-{}", src.file_name().unwrap().to_string_lossy());
            let dst = into.join(name);
            std::fs::copy(src, &dst).unwrap();
            dst
        })
        .collect()
}

/// Weir's outcome for each message (by file name) under a converted script.
fn weir_outcomes(flow: &Path, messages: &[PathBuf]) -> BTreeMap<String, Outcome> {
    let options = ["--engine", "interp", "--from", SENDER, "--to", RECIPIENT];
    decisions(&options, flow, messages)
        .into_iter()
        .map(|(file, d)| (file, Outcome::from_decision(&d)))
        .collect()
}

#[test]
fn converted_scripts_decide_as_pigeonhole_does() {
    let Some(ph) = pigeonhole("sieve-diff") else {
        return;
    };
    let messages = messages(&ph.dir.join("messages"));
    let mut scripts: Vec<PathBuf> = scripts();
    let rules = corpus_dir().join("rules");
    scripts.extend(["rules_10.sieve", "rules_100.sieve"].map(|r| rules.join(r)));
    for s in &scripts {
        std::fs::copy(s, ph.dir.join("scripts").join(s.file_name().unwrap())).unwrap();
    }
    ph.open_up();
    let listed = listed_differences();
    let mut found = BTreeSet::new();
    let mut report = Vec::new();
    let mut compared = 0;
    for s in &scripts {
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        let copy = ph.dir.join("scripts").join(&name);
        if !ph.accepts(&copy) {
            eprintln!("{name}: sievec refuses it; not compared");
            continue;
        }
        // Every script sievec accepts parses.
        let text = std::fs::read_to_string(s).unwrap();
        weir_sieve::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let flow = ph.dir.join(&name).with_extension("flow");
        let out = weir(
            &[
                "import",
                "sieve",
                "--allow-partial",
                copy.to_str().unwrap(),
                "-o",
                flow.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        // `weir run` remembers `duplicate()` keys across the messages of
        // one run; each `sieve-test` starts afresh, so such scripts see one
        // message per run.
        let ours = if text.contains("duplicate") {
            messages
                .iter()
                .flat_map(|m| weir_outcomes(&flow, std::slice::from_ref(m)))
                .collect()
        } else {
            weir_outcomes(&flow, &messages)
        };
        for m in &messages {
            let file = m.file_name().unwrap().to_string_lossy().into_owned();
            let theirs = ph.run(&copy, m);
            let mine = ours.get(&file).cloned().unwrap_or_default();
            compared += 1;
            if theirs != mine {
                found.insert((name.clone(), file.clone()));
                report.push(format!(
                    "{name} {file}\n  pigeonhole: {theirs}\n  weir:       {mine}"
                ));
            }
        }
    }
    eprintln!(
        "{compared} script × message pairs compared, {} differ",
        found.len()
    );
    // A row whose message is `*` covers every message of its script.
    let covers = |(script, message): &(String, String), (s, m): &(String, String)| {
        script == s && (message == "*" || message == m)
    };
    let unlisted: Vec<&String> = report
        .iter()
        .filter(|r| {
            let mut w = r.split_whitespace();
            let key = (
                w.next().unwrap_or_default().to_string(),
                w.next().unwrap_or_default().to_string(),
            );
            !listed.iter().any(|l| covers(l, &key))
        })
        .collect();
    let fixed: Vec<&(String, String)> = listed
        .iter()
        .filter(|l| !found.iter().any(|f| covers(l, f)))
        .collect();
    assert!(
        unlisted.is_empty() && fixed.is_empty(),
        "differences not listed in docs/sieve.md:\n{}\n\nlisted but no longer found: {fixed:?}",
        unlisted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The flags each message gets: Pigeonhole's on its stored copies, Weir's
/// `flag` actions.
fn flags_of(outcome: &Outcome) -> BTreeSet<String> {
    outcome
        .stores
        .iter()
        .filter_map(|s| {
            s.split_once(" [")
                .map(|(_, f)| f.trim_end_matches(']').to_string())
        })
        .flat_map(|f| f.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// The body phrase of each generated rule that tests one
/// (`if body :text :contains "P" {` then `addflag "rI";`), by flag.
fn body_phrases(script: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = script.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let phrase = w[0]
                .strip_prefix("if body :text :contains \"")?
                .strip_suffix("\" {")?;
            let flag = w[1]
                .trim()
                .strip_prefix("addflag \"")?
                .strip_suffix("\";")?;
            Some((flag.to_string(), phrase.to_lowercase()))
        })
        .collect()
}

/// Whether the message's text has the phrase only across a line break:
/// Pigeonhole's `body :text` keeps line breaks, Weir's `body` joins the
/// lines of a paragraph with a space (docs/reference.md).
fn only_across_a_line_break(message: &[u8], phrase: &str) -> bool {
    let text = String::from_utf8_lossy(message).to_lowercase();
    let words: Vec<String> = phrase.split(' ').map(regex_escape).collect();
    let spaced = phrase.to_string();
    // A break between any two words, the others separated by a space.
    let any_break = (1..words.len()).any(|i| {
        let (a, b) = words.split_at(i);
        let pattern = format!(r"{}[ \t]*\r?\n[ \t]*{}", a.join(" "), b.join(" "));
        regex_find(&pattern, &text)
    });
    any_break && !text.contains(&spaced)
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == ' ' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

fn regex_find(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|r| r.is_match(text))
}

/// The flags Pigeonhole sets with the shared corpus generator's
/// `rules_1000.sieve` over the 1,000 synthetic messages, as
/// `tests/corpus/README.md` counts them.
const PIGEONHOLE_FLAGS_1000: usize = 2042;

/// The shared corpus generator's 1,000 rules (`rules_1000.sieve`, one
/// `addflag "rI"` per rule) over the 1,000 synthetic messages: converted
/// exactly, they set the same flags as Pigeonhole's `sieve-test` on every
/// message, in both engines. Without `sieve-test` the total is still
/// checked against Pigeonhole's count. The generator's own
/// `rules_1000.flow` reads `body`, which joins the lines of a paragraph:
/// every flag it sets beyond those is a body phrase that occurs in the
/// message only across a line break (docs/sieve.md).
#[test]
fn generated_rules_1000_set_the_flags_pigeonhole_sets() {
    let ph = pigeonhole("sieve-rules1000");
    let corpus = corpus_dir();
    let own;
    let dir: &Path = match &ph {
        Some(p) => &p.dir,
        None => {
            own = temp_dir("sieve-rules1000-weir");
            &own
        }
    };
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::create_dir_all(dir.join("messages")).unwrap();
    let script = dir.join("scripts/rules_1000.sieve");
    std::fs::copy(corpus.join("rules/rules_1000.sieve"), &script).unwrap();
    let mut messages: Vec<PathBuf> = std::fs::read_dir(corpus.join("synth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    messages.sort();
    let messages: Vec<PathBuf> = messages
        .iter()
        .map(|m| {
            let dst = dir.join("messages").join(m.file_name().unwrap());
            std::fs::copy(m, &dst).unwrap();
            dst
        })
        .collect();
    let flow = dir.join("rules_1000.flow");
    let out = weir(
        &[
            "import",
            "sieve",
            script.to_str().unwrap(),
            "-o",
            flow.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "an exact conversion: {}",
        stderr(&out)
    );
    let ours = weir_flags(&flow, &messages, "interp");
    assert_eq!(
        ours,
        weir_flags(&flow, &messages, "jit"),
        "the interpreter and native code"
    );
    let total: usize = ours.values().map(BTreeSet::len).sum();
    assert_eq!(
        total, PIGEONHOLE_FLAGS_1000,
        "the flags Pigeonhole sets over synth"
    );
    body_reads_wrapped_phrases(&script, dir, &ours, &messages);
    let Some(ph) = ph else {
        return;
    };
    ph.open_up();
    let theirs = pigeonhole_flags(&ph, &script, &messages);
    assert_eq!(theirs.len(), 1000);
    let differ: Vec<String> = theirs
        .iter()
        .filter(|(file, flags)| ours.get(*file) != Some(flags))
        .map(|(file, flags)| format!("{file}: pigeonhole {flags:?}, weir {:?}", ours.get(file)))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // 31 MB of message copies; a failing run keeps them to look at.
    let _ = std::fs::remove_dir_all(&ph.dir);
}

/// The flags a converted script sets on each message (by file name), run
/// by `weir run` with `engine`.
fn weir_flags(
    flow: &Path,
    messages: &[PathBuf],
    engine: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    let run = ["--engine", engine, "--from", SENDER, "--to", RECIPIENT];
    decisions(&run, flow, messages)
        .into_iter()
        .map(|(file, d)| (file, flags_of(&Outcome::from_decision(&d))))
        .collect()
}

/// `weir run --json OPTIONS FLOW MESSAGES...`: each message's decision,
/// by the message's file name.
fn decisions(
    options: &[&str],
    flow: &Path,
    messages: &[PathBuf],
) -> Vec<(String, serde_json::Value)> {
    let mut args: Vec<String> = ["run", "--json"].iter().map(|a| a.to_string()).collect();
    args.extend(options.iter().map(|a| a.to_string()));
    args.push(flow.display().to_string());
    args.extend(messages.iter().map(|m| m.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = weir(&args, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            // With one message, `weir run` names no file.
            let path = d["file"]
                .as_str()
                .map(PathBuf::from)
                .unwrap_or_else(|| messages[0].clone());
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (file, d)
        })
        .collect()
}

/// The flags `sieve-test` sets on each message, two messages at a time.
fn pigeonhole_flags(
    ph: &Pigeonhole,
    script: &Path,
    messages: &[PathBuf],
) -> BTreeMap<String, BTreeSet<String>> {
    std::thread::scope(|s| {
        let halves: Vec<_> = messages
            .chunks(messages.len().div_ceil(2))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|m| {
                            let file = m.file_name().unwrap().to_string_lossy().into_owned();
                            (file, flags_of(&ph.run(script, m)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The generator's own `rules_1000.flow` tests `body`, whose paragraphs
/// are joined: it sets every flag the converted rules set, and more, each
/// a body phrase found in the message only across a line break.
fn body_reads_wrapped_phrases(
    script: &Path,
    dir: &Path,
    converted: &BTreeMap<String, BTreeSet<String>>,
    messages: &[PathBuf],
) {
    let phrases = body_phrases(&std::fs::read_to_string(script).unwrap());
    let joined = native_tags(&corpus_dir().join("rules/rules_1000.flow"), messages);
    let (mut more, mut unexplained) = (0, Vec::new());
    for (file, tags) in &joined {
        let ours = converted.get(file).cloned().unwrap_or_default();
        let bytes = std::fs::read(dir.join("messages").join(file)).unwrap();
        for flag in tags.symmetric_difference(&ours) {
            let wrapped = phrases
                .get(flag)
                .is_some_and(|p| only_across_a_line_break(&bytes, p));
            if wrapped && !ours.contains(flag) {
                more += 1;
            } else {
                unexplained.push(format!(
                    "{file}: {flag} (body.lines {ours:?}, body {tags:?})"
                ));
            }
        }
    }
    eprintln!(
        "rules_1000: the converted rules set {PIGEONHOLE_FLAGS_1000} flags, as Pigeonhole; \
         rules_1000.flow (body) sets {more} more, each a body phrase across a line break"
    );
    assert!(unexplained.is_empty(), "{}", unexplained.join("\n"));
    assert!(more > 0, "some phrase of rules_1000 is wrapped in synth");
}

/// The tags the generator's own Flow rules set, per message.
fn native_tags(flow: &Path, messages: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
    decisions(&["--engine", "interp"], flow, messages)
        .into_iter()
        .map(|(file, d)| {
            let tags = d["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            (file, tags)
        })
        .collect()
}
