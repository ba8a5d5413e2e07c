//! `weir serve`: the daemon (being written: milter, HTTP control API,
//! hot reload, durable state).

/// Runs the daemon; returns the exit status.
pub fn run(config_path: Option<&std::path::Path>, rules: Option<&std::path::Path>) -> u8 {
    let _ = (config_path, rules);
    eprintln!("weir serve: not available in this build yet");
    1
}
