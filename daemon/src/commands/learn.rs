//! `weir learn NAME CLASS PATH... [--state DIR] [--forget]`: teach a
//! learned classifier from messages (docs/classifiers.md). Every message
//! is read and learned in memory (read and parsed on every core), then
//! the model and the digest records are written at once, so an
//! interrupted run changes nothing.

use weir_classify::{Learner, Outcome, SledState};
use weir_stdlib::{Limits, Message};

use crate::cli::LearnArgs;
use crate::inputs::{self, Input};

use weir_classify::MAX_VOCABULARY;

/// What a run did, for its summary line.
#[derive(Debug, Default)]
struct Counts {
    learned: usize,
    already: usize,
    moved: usize,
    forgotten: usize,
    not_learned: usize,
    unreadable: usize,
}

/// Exit status: 0 when every message was read; 1 when one could not be
/// (the others are still learned); 2 when the state cannot be opened or
/// written (nothing is learned).
pub fn run(args: &LearnArgs) -> u8 {
    if args.class.is_empty() {
        eprintln!("error: the class cannot be empty");
        return 2;
    }
    let (_db, state) = match SledState::open_dir(&args.state) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut learner = match Learner::open(&state, &args.name) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot read the learned state: {e}");
            return 2;
        }
    };
    let mut counts = Counts::default();
    let inputs = inputs::expand(&args.paths, inputs::any_file);
    for (name, features) in read_all(&inputs) {
        match features {
            Ok((features, digest)) => count(
                &mut counts,
                learner.learn_digested(&features, digest, &args.class, args.forget),
                &name,
            ),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                counts.unreadable += 1;
            }
        }
    }
    let vocabulary = learner.model().vocabulary();
    let summary = learner
        .model()
        .learned()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Err(e) = learner.save_pruned(MAX_VOCABULARY) {
        eprintln!("error: cannot write the learned state: {e}; nothing was learned");
        return 2;
    }
    println!(
        "{}: {} learned, {} already learned, {} moved, {} forgotten, {} not learned before, {} unreadable; \
         now {summary} ({} features)",
        args.name,
        counts.learned,
        counts.already,
        counts.moved,
        counts.forgotten,
        counts.not_learned,
        counts.unreadable,
        vocabulary.min(MAX_VOCABULARY),
    );
    u8::from(counts.unreadable > 0)
}

/// Adds one outcome to the counts.
fn count(counts: &mut Counts, outcome: Result<Outcome, weir_classify::StateError>, name: &str) {
    match outcome {
        Ok(Outcome::Learned) => counts.learned += 1,
        Ok(Outcome::AlreadyLearned) => counts.already += 1,
        Ok(Outcome::Moved(_)) => counts.moved += 1,
        Ok(Outcome::Forgotten(_)) => counts.forgotten += 1,
        Ok(Outcome::NotLearned) => counts.not_learned += 1,
        Err(e) => {
            eprintln!("error: {name}: {e}");
            counts.unreadable += 1;
        }
    }
}

/// The features of a message and their digest, or why it is unreadable.
type Read = Result<(Vec<u64>, String), String>;

/// The features of every message of every input, in input order (each
/// message of an mbox in turn), with their digests: read, parsed and
/// hashed on every core, learned in order afterwards, so the outcome
/// does not depend on the cores.
fn read_all(inputs: &[Input]) -> Vec<(String, Read)> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = inputs.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().flat_map(read_one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    })
}

/// The features of each message of one input (one message, or each of
/// an mbox), each named for error messages.
fn read_one(input: &Input) -> Vec<(String, Read)> {
    let bytes = match input.read() {
        Ok(b) => b,
        Err(e) => return vec![(input.display(), Err(e.to_string()))],
    };
    let messages = if weir_classify::mbox::is_mbox(&bytes) {
        weir_classify::mbox::split(&bytes)
    } else {
        vec![bytes]
    };
    let many = messages.len() > 1;
    messages
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let name = if many {
                format!("{} (message {})", input.display(), i + 1)
            } else {
                input.display()
            };
            let features = Message::parse(raw, &Limits::default())
                .map(|m| {
                    let features = weir_classify::tokens::features(&m);
                    let digest = weir_classify::digest(&features);
                    (features, digest)
                })
                .map_err(|e| e.to_string());
            (name, features)
        })
        .collect()
}
