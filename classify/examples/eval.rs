//! Tuning aid: learns `DIR/train/{spam,ham}` and classifies
//! `DIR/test/{spam,ham}` in memory, printing recall and false positives
//! over a sweep (benches/classify/run.sh is the measurement of record).
//!
//!     cargo run --release -p weir-classify --example eval -- DIR

use std::path::Path;

use weir_classify::model::{TUNING, Tuning};
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
    eprintln!(
        "learned in {:?}, {} features",
        t.elapsed(),
        model.vocabulary()
    );
    let classes = vec!["spam".to_string(), "ham".to_string()];
    // GRID="s,x,min,maxf;s,x,min,maxf" measures several tunings at once.
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
            }
        })
        .collect();
    if tunings.is_empty() {
        tunings.push(TUNING);
    }
    // Naive Bayes log-odds over the present features, for comparison:
    // recall at the score that lets at most N false positives through.
    let nb = |f: &Vec<u64>, a: f64| -> f64 {
        let (ns, nh) = (train_spam.len() as f64, train_ham.len() as f64);
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
        let ss: Vec<f64> = test_spam.iter().map(|f| nb(f, a)).collect();
        let mut hs: Vec<f64> = test_ham.iter().map(|f| nb(f, a)).collect();
        hs.sort_by(|x, y| y.total_cmp(x));
        for allowed in [0usize, 2, 5] {
            let cut = hs[allowed];
            let tp = ss.iter().filter(|&&s| s > cut).count();
            println!(
                "NB a={a}: at <= {allowed} fp (score > {cut:.1}) recall {:6.2} %",
                100.0 * tp as f64 / ss.len() as f64
            );
        }
    }
    // Logistic regression over hashed features (Stalwart's choice), for
    // comparison: a few shuffled epochs of SGD.
    for (bits, epochs, rate) in [(20u32, 5usize, 0.05f64), (22, 10, 0.02)] {
        let mask = (1u64 << bits) - 1;
        let mut w = vec![0f64; 1 << bits];
        let mut data: Vec<(&Vec<u64>, f64)> = train_spam
            .iter()
            .map(|f| (f, 1.0))
            .chain(train_ham.iter().map(|f| (f, 0.0)))
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
        let ss: Vec<f64> = test_spam.iter().map(score).collect();
        let mut hs: Vec<f64> = test_ham.iter().map(score).collect();
        hs.sort_by(|x, y| y.total_cmp(x));
        for allowed in [0usize, 2, 5] {
            let cut = hs[allowed];
            let tp = ss.iter().filter(|&&s| s > cut).count();
            println!(
                "LR bits={bits} epochs={epochs} rate={rate}: at <= {allowed} fp (z > {cut:.2}) recall {:6.2} %",
                100.0 * tp as f64 / ss.len() as f64
            );
        }
        let tp = ss.iter().filter(|&&s| s > 0.0).count();
        let fp = hs.iter().filter(|&&s| s > 0.0).count();
        println!(
            "  at p>0.5: recall {:6.2} % fp {fp}",
            100.0 * tp as f64 / ss.len() as f64
        );
    }
    // Fisher, by rank: recall at <= N false positives.
    {
        let ps: Vec<f64> = test_spam
            .iter()
            .map(|f| model.classify(&classes, f).probability("spam"))
            .collect();
        let mut ph: Vec<f64> = test_ham
            .iter()
            .map(|f| model.classify(&classes, f).probability("spam"))
            .collect();
        ph.sort_by(|x, y| y.total_cmp(x));
        for allowed in [0usize, 2, 5] {
            let cut = ph[allowed];
            let tp = ps.iter().filter(|&&s| s > cut).count();
            println!(
                "Fisher: at <= {allowed} fp (p > {cut:.6}) recall {:6.2} %",
                100.0 * tp as f64 / ps.len() as f64
            );
        }
    }
    for tuning in tunings {
        let t = std::time::Instant::now();
        let spam_probability = |set: &[Vec<u64>]| -> Vec<f64> {
            set.iter()
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
        for cut in [0.5, 0.9, 0.99, 0.999, 0.9999] {
            let tp = ps.iter().filter(|&&p| p >= cut).count();
            let fp = ph.iter().filter(|&&p| p >= cut).count();
            println!(
                "  cut {cut:<6} recall {:6.2} %  fp {:5.2} % ({fp})",
                100.0 * tp as f64 / ps.len() as f64,
                100.0 * fp as f64 / ph.len() as f64
            );
        }
    }
}
