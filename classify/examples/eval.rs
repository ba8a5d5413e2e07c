//! Tuning aid: learns `DIR/train/{spam,ham}` and classifies
//! `DIR/test/{spam,ham}` in memory, printing recall and false positives
//! over a sweep (benches/classify/run.sh is the measurement of record).
//!
//!     cargo run --release -p weir-classify --example eval -- DIR

use std::path::Path;

use weir_classify::{Model, tokens};
use weir_stdlib::{Limits, Message};

fn features_of(dir: &Path) -> Vec<Vec<u64>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("a directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| {
            let bytes = std::fs::read(p).ok()?;
            let m = Message::parse(&bytes, &Limits::default()).ok()?;
            Some(tokens::features(&m))
        })
        .collect()
}

fn main() {
    let dir = std::env::args().nth(1).expect("the split directory");
    let dir = Path::new(&dir);
    let t = std::time::Instant::now();
    let train_spam = features_of(&dir.join("train/spam"));
    let train_ham = features_of(&dir.join("train/ham"));
    let test_spam = features_of(&dir.join("test/spam"));
    let test_ham = features_of(&dir.join("test/ham"));
    let n = train_spam.len() + train_ham.len() + test_spam.len() + test_ham.len();
    eprintln!("tokenized {n} in {:?}", t.elapsed());
    let mut model = Model::default();
    let t = std::time::Instant::now();
    for f in &train_spam {
        model.add("spam", f, 1);
    }
    for f in &train_ham {
        model.add("ham", f, 1);
    }
    eprintln!("learned in {:?}, {} features", t.elapsed(), model.vocabulary());
    let classes = vec!["spam".to_string(), "ham".to_string()];
    let t = std::time::Instant::now();
    let ps: Vec<f64> = test_spam
        .iter()
        .map(|f| model.classify(&classes, f).probability("spam"))
        .collect();
    let ph: Vec<f64> = test_ham
        .iter()
        .map(|f| model.classify(&classes, f).probability("spam"))
        .collect();
    eprintln!("classified in {:?}", t.elapsed());
    for cut in [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999] {
        let tp = ps.iter().filter(|&&p| p >= cut).count();
        let fp = ph.iter().filter(|&&p| p >= cut).count();
        println!(
            "cut {cut:<5} recall {:6.2} %  fp {:5.2} % ({fp})",
            100.0 * tp as f64 / ps.len() as f64,
            100.0 * fp as f64 / ph.len() as f64
        );
    }
}
