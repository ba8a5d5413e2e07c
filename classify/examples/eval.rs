//! Tuning aid: learns `DIR/train/{spam,ham}` and classifies
//! `DIR/test/{spam,ham}` in memory, printing recall and false positives
//! over a sweep (benches/classify/run.sh is the measurement of record).
//!
//!     cargo run --release -p weir-classify --example eval -- DIR...
//!
//! Several split directories (benches/classify/bench.py's `split` with
//! other seeds) are measured one after the other. `GRID="s,x,min,maxf;..."`
//! measures several tunings at once; `SHOW=N` prints the N ham scored most
//! like spam and the N spam scored least like it, to see what the
//! features miss; `COMPARE=1` adds naive Bayes and logistic regression
//! over the same features.

use std::path::{Path, PathBuf};

use weir_classify::model::{CUT, TUNING, Tuning};
use weir_classify::{Model, tokens};

use weir_stdlib::{Limits, Message};

/// The messages of one folder: each file with its features.
struct Set {
    files: Vec<PathBuf>,
    features: Vec<Vec<u64>>,
}

fn features_of(dir: &Path) -> Set {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("a directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut set = Set {
        files: Vec::new(),
        features: Vec::new(),
    };
    for p in paths {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let Ok(m) = Message::parse(&bytes, &Limits::default()) else {
            continue;
        };
        set.features.push(tokens::features(&m));
        set.files.push(p);
    }
    set
}

fn grid() -> Vec<Tuning> {
    let grid = std::env::var("GRID").unwrap_or_default();
    let mut tunings: Vec<Tuning> = grid
        .split(';')
        .filter(|g| !g.is_empty())
        .map(|g| {
            let v: Vec<f64> = g.split(',').map(|x| x.parse().expect("a number")).collect();
            Tuning {
                s: v[0],
                x: v[1],
                min_strength: v[2],
                max_features: v[3] as usize,
                sharpness: v.get(4).copied().unwrap_or(1.0),
            }
        })
        .collect();
    if tunings.is_empty() {
        tunings.push(TUNING);
    }
    tunings
}

/// Recall at the score that lets at most `allowed` ham through.
fn recall_at(spam: &[f64], ham: &[f64], allowed: usize) -> (f64, f64) {
    let mut h = ham.to_vec();
    h.sort_by(|x, y| y.total_cmp(x));
    let cut = h.get(allowed).copied().unwrap_or(f64::NEG_INFINITY);
    let tp = spam.iter().filter(|&&s| s > cut).count();
    (100.0 * tp as f64 / spam.len() as f64, cut)
}

fn main() {
    let show: usize = std::env::var("SHOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for dir in std::env::args().skip(1) {
        println!("== {dir}");
        eval(Path::new(&dir), show);
    }
}

fn eval(dir: &Path, show: usize) {
    let t = std::time::Instant::now();
    let train_spam = features_of(&dir.join("train/spam"));
    let train_ham = features_of(&dir.join("train/ham"));
    let test_spam = features_of(&dir.join("test/spam"));
    let test_ham = features_of(&dir.join("test/ham"));
    let n = train_spam.files.len()
        + train_ham.files.len()
        + test_spam.files.len()
        + test_ham.files.len();
    let elapsed = t.elapsed();
    eprintln!(
        "tokenized {n} in {elapsed:?} ({:.0} messages/s, parsing included)",
        n as f64 / elapsed.as_secs_f64()
    );
    let mut model = Model::default();
    for f in &train_spam.features {
        model.add("spam", f, 1);
    }
    for f in &train_ham.features {
        model.add("ham", f, 1);
    }
    eprintln!("{} features", model.vocabulary());
    if std::env::var_os("COMPARE").is_some() {
        compare(&model, [&train_spam, &train_ham], [&test_spam, &test_ham]);
    }
    let classes = vec!["spam".to_string(), "ham".to_string()];
    // At most 0.1 % of the ham: the target's false-positive bound.
    let allowed = test_ham.files.len() / 1000;
    for tuning in grid() {
        let t = std::time::Instant::now();
        let spam_probability = |set: &Set| -> Vec<f64> {
            set.features
                .iter()
                .map(|f| {
                    model
                        .classify_tuned(&classes, f, &tuning)
                        .probability("spam")
                })
                .collect()
        };
        let ps = spam_probability(&test_spam);
        let ph = spam_probability(&test_ham);
        println!("{tuning:?} classified in {:?}", t.elapsed());
        for cut in [0.5, 0.55, 0.6, 0.7, 0.8, CUT, 0.95, 0.99] {
            let tp = ps.iter().filter(|&&p| p >= cut).count();
            let fp = ph.iter().filter(|&&p| p >= cut).count();
            println!(
                "  cut {cut:<6} recall {:6.2} %  fp {:5.2} % ({fp})",
                100.0 * tp as f64 / ps.len() as f64,
                100.0 * fp as f64 / ph.len() as f64
            );
        }
        let (recall, cut) = recall_at(&ps, &ph, allowed);
        println!("  at <= {allowed} fp (p > {cut:.6}) recall {recall:6.2} %");
        misclassified(&test_ham, &ph, show, true);
        misclassified(&test_spam, &ps, show, false);
    }
}

/// Prints the `n` messages of `set` the model got most wrong.
fn misclassified(set: &Set, probability: &[f64], n: usize, ham: bool) {
    let mut order: Vec<usize> = (0..set.files.len()).collect();
    order.sort_by(|&a, &b| probability[a].total_cmp(&probability[b]));
    if ham {
        order.reverse();
    }
    for &i in order.iter().take(n) {
        println!(
            "    {} {:.6} {}",
            if ham { "ham " } else { "spam" },
            probability[i],
            set.files[i].display()
        );
    }
}

/// Naive Bayes and logistic regression over the same features, ranked
/// by score: recall at the score that lets at most N false positives
/// through.
fn compare(model: &Model, train: [&Set; 2], test: [&Set; 2]) {
    let (ns, nh) = (train[0].files.len() as f64, train[1].files.len() as f64);
    let nb = |f: &Vec<u64>, a: f64| -> f64 {
        let mut score = 0.0;
        for &x in f {
            if let Some(c) = model.counts(x) {
                let (s, h) = (c[0] as f64, c[1] as f64);
                score += ((s + a) / (ns + 2.0 * a)).ln() - ((h + a) / (nh + 2.0 * a)).ln();
            }
        }
        score
    };
    for a in [0.1, 0.5, 1.0] {
        let ss: Vec<f64> = test[0].features.iter().map(|f| nb(f, a)).collect();
        let hs: Vec<f64> = test[1].features.iter().map(|f| nb(f, a)).collect();
        for allowed in [0usize, 2, 5] {
            let (recall, cut) = recall_at(&ss, &hs, allowed);
            println!("NB a={a}: at <= {allowed} fp (score > {cut:.1}) recall {recall:6.2} %");
        }
    }
    // Logistic regression over hashed features (Stalwart's choice): a
    // few shuffled epochs of SGD.
    for (bits, epochs, rate) in [(20u32, 5usize, 0.05f64), (22, 10, 0.02)] {
        let mask = (1u64 << bits) - 1;
        let mut w = vec![0f64; 1 << bits];
        let mut data: Vec<(&Vec<u64>, f64)> = train[0]
            .features
            .iter()
            .map(|f| (f, 1.0))
            .chain(train[1].features.iter().map(|f| (f, 0.0)))
            .collect();
        let mut seed = 42u64;
        for _ in 0..epochs {
            for i in (1..data.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                data.swap(i, (seed >> 33) as usize % (i + 1));
            }
            for (f, y) in &data {
                let z: f64 = f.iter().map(|x| w[(*x & mask) as usize]).sum();
                let p = 1.0 / (1.0 + (-z).exp());
                let g = (y - p) * rate;
                for x in f.iter() {
                    w[(*x & mask) as usize] += g;
                }
            }
        }
        let score = |f: &Vec<u64>| -> f64 { f.iter().map(|x| w[(*x & mask) as usize]).sum() };
        let ss: Vec<f64> = test[0].features.iter().map(score).collect();
        let hs: Vec<f64> = test[1].features.iter().map(score).collect();
        for allowed in [0usize, 2, 5] {
            let (recall, cut) = recall_at(&ss, &hs, allowed);
            println!(
                "LR bits={bits} epochs={epochs} rate={rate}: at <= {allowed} fp (z > {cut:.2}) recall {recall:6.2} %"
            );
        }
    }
}
