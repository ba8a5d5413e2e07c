//! Every fuzz target of `fuzz/` on the stable toolchain: each seed of
//! `fuzz/corpus/<target>/` (crashes found become seeds there, so they stay
//! fixed), then seeded random mutations of the seeds for a fixed budget of
//! inputs (`WEIR_FUZZ_BUDGET`, default below) and time. libFuzzer finds
//! more in longer runs (`fuzz/README.md`); this keeps every target run in
//! CI and replays what it found.
//!
//! A binary of its own, not a module of `tests/it`: the fuzz harness
//! counts panics process-wide (a daemon task's panic is only logged by
//! tokio), so another test failing beside it would fail its input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir_serve::fuzz;

/// Mutated inputs per target when `WEIR_FUZZ_BUDGET` is not set.
const DEFAULT_BUDGET: usize = 4000;

/// The most time spent on mutations of one target.
const TIME_BUDGET: Duration = Duration::from_secs(60);

/// The longest mutated input.
const MAX_LEN: usize = 64 * 1024;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a seed");
            (p, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// xorshift64*: a fixed seed gives the same mutations on every run, so a
/// failure is reproduced by running the test again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes the mutator likes to insert: protocol separators and limits.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"\0",
    b":",
    b" ",
    b"<>",
    b"@",
    b"{",
    b"}",
    b"\"",
    b"[",
    b"]",
    b"=",
    b"\xff",
    b"\xc3\xa9",
    b"\x00\x00\x00\x01",
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x10\x00",
];

/// One mutation of `input`, or a splice with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            4 if !out.is_empty() => {
                // Repeat a slice: long lines, many commands.
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(64)).min(out.len());
                let piece = out[start..end].to_vec();
                for _ in 0..=rng.below(8) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(256)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out.truncate(MAX_LEN);
    out
}

fn budget() -> usize {
    std::env::var("WEIR_FUZZ_BUDGET")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(DEFAULT_BUDGET)
}

/// Runs `target` on every seed, then on mutations; a panic names the input
/// and leaves it in `target/fuzz-replay-failures/` to become a seed.
fn replay(name: &str, target: fn(&[u8]), budget: usize) {
    let seeds = corpus(name);
    for (path, bytes) in &seeds {
        run_one(name, target, bytes, &format!("seed {}", path.display()));
    }
    let mut rng = Rng(0x5eed_0000_0000_0001 ^ name.len() as u64);
    let started = Instant::now();
    let mut runs = 0;
    while runs < budget && started.elapsed() < TIME_BUDGET {
        let (_, base) = &seeds[rng.below(seeds.len())];
        let (_, other) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, other);
        run_one(name, target, &input, &format!("mutation {runs}"));
        runs += 1;
    }
    eprintln!(
        "{name}: {} seeds, {runs} mutations in {:?}",
        seeds.len(),
        started.elapsed()
    );
}

fn run_one(name: &str, target: fn(&[u8]), input: &[u8], what: &str) {
    let result = std::panic::catch_unwind(|| target(input));
    if result.is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/fuzz-replay-failures")
            .join(name);
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(weir_hash(input));
        let _ = std::fs::write(&file, input);
        panic!(
            "fuzz target {name} failed on {what}; input saved as {}",
            file.display()
        );
    }
}

fn weir_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[test]
fn milter_session() {
    // Each input is two sessions over the daemon: a smaller budget.
    replay(
        "milter",
        |d| {
            fuzz::milter_bytes(d);
        },
        budget() / 4,
    );
}

#[test]
fn lmtp_session() {
    replay(
        "lmtp",
        |d| {
            fuzz::lmtp_bytes(d);
        },
        budget() / 4,
    );
}

#[test]
fn decision_stamp() {
    replay("stamp", fuzz::stamp, budget());
}

#[test]
fn weir_toml() {
    replay("config", fuzz::config_toml, budget());
}

#[test]
fn list_file() {
    replay("list", fuzz::list_file, budget());
}

#[test]
fn sieve_script() {
    replay("sieve", weir_sieve::fuzz_script, budget());
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The harness reaches what matters: the seeds get the daemon's real
/// answers (a delivery, an edit, a refusal), not an early protocol error.
#[test]
fn the_seeds_reach_decisions() {
    let lmtp = String::from_utf8_lossy(&fuzz::lmtp_bytes(&seed("lmtp", "plain"))).into_owned();
    eprintln!("{lmtp}");
    assert!(lmtp.starts_with("220 "), "{lmtp}");
    assert!(lmtp.contains("\r\n354 "), "{lmtp}");
    let after_data = lmtp.split("\r\n354 ").nth(1).unwrap_or_default();
    assert!(after_data.contains("\r\n250 2."), "delivered: {lmtp}");
    assert!(lmtp.ends_with("221 2.0.0 Bye\r\n"), "{lmtp}");

    // Milter replies are packets: 4-byte length, command, payload.
    let commands = |replies: &[u8]| -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = replies;
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(packet) = rest.get(4..4 + len) else {
                break;
            };
            out.push((packet[0], packet[1..].to_vec()));
            rest = &rest[4 + len..];
        }
        out
    };
    for replies in fuzz::milter_bytes(&seed("milter", "edit_two_rcpts")) {
        let packets = commands(&replies);
        assert!(
            packets
                .iter()
                .any(|(c, p)| *c == b'h' && p.starts_with(b"X-Fuzz\0")),
            "the rule's add_header: {packets:?}"
        );
    }
    for replies in fuzz::milter_bytes(&seed("milter", "reject_at_mail")) {
        let packets = commands(&replies);
        assert!(
            packets
                .iter()
                .any(|(c, p)| *c == b'y' && p.starts_with(b"550")),
            "the rule's reject: {packets:?}"
        );
    }
}
