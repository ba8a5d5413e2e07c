//! The `weir` binary's integration tests, one binary (as ripgrep has them):
//! each module drives the built `weir` (`CARGO_BIN_EXE_weir`) and, where
//! the test needs them, real Postfix, miltertest and LMTP peers.

mod common;
mod console_support;
mod postfix_support;
mod redis_support;
mod serve_support;

mod classifiers;
mod classifiers_shared;
mod cli;
mod cli_replies;
mod console_api;
mod console_browser;
mod corpus_tags;
mod editor_support;
mod eval_golden;
mod flow_tests_golden;
mod fmt_meaning;
mod lmtp;
mod lmtp_crash;
mod lmtp_semantics;
mod lsp;
mod milter_group_commit;
mod milter_rates;
mod miltertest;
mod outbox;
mod postfix;
mod postfix_lmtp;
mod postfix_pipeline;
mod redis_rate_trips;
mod run_jobs;
mod serve_big_messages;
mod serve_disk_full;
mod serve_flood;
mod serve_hosts;
mod serve_http;
mod serve_reload_load;
mod serve_restart;
mod serve_store;
mod sieve_import;
mod soak;
mod systemd_unit;
mod test_world;
