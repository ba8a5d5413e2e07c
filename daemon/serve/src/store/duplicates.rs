//! The records behind `duplicate(KEY, WINDOW)`: for each (recipient, key),
//! when a copy carrying the key was last delivered or accepted. Written
//! only after the copy's fate is known (never for a deferred or refused
//! copy), so an MTA's retry of a deferred message is never its own
//! duplicate. Pruned with the audit log.

use super::Store;

/// The tree key of a record: the scope (lower-cased recipient), NUL, the key.
fn record_key(scope: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(scope.len() + 1 + key.len());
    out.extend_from_slice(scope.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

fn decode_time(value: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(value.try_into().ok()?))
}

impl Store {
    /// Whether a copy carrying `key` was delivered to `scope` within
    /// `window_secs` before `now`. A store error reads as "not seen": a
    /// duplicate delivered is better than a message lost.
    pub fn duplicate_seen(&self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool {
        if let Some(r) = &self.redis {
            return match r.duplicate_time(scope, key) {
                Ok(time) => time.is_some_and(|t| weir_compiler::within_window(t, window_secs, now)),
                Err(e) => {
                    tracing::error!("duplicate record {key:?}: {e:#}");
                    false
                }
            };
        }
        match self.duplicates.get(record_key(scope, key)) {
            Ok(Some(value)) => decode_time(&value)
                .is_some_and(|t| weir_compiler::within_window(t, window_secs, now)),
            Ok(None) => false,
            Err(e) => {
                tracing::error!("duplicate record {key:?}: {e}");
                false
            }
        }
    }

    /// Records that a copy carrying each of `keys` was delivered to `scope`
    /// at `now` (not flushed: the caller's audit entry flushes it).
    pub fn record_duplicates(&self, scope: &str, keys: &[String], now: i64) -> anyhow::Result<()> {
        if let Some(r) = &self.redis {
            return r.record_duplicates(scope, keys, now);
        }
        for key in keys {
            self.duplicates
                .insert(record_key(scope, key), &now.to_be_bytes())?;
        }
        Ok(())
    }

    /// Records the `duplicate()` keys of a decision for the recipient whose
    /// copy it decided (`Address::parse`d and lower-cased, as evaluation
    /// scopes them), when the copy was delivered or accepted: not for
    /// `reject` or `tempfail`.
    pub fn record_decision_duplicates(
        &self,
        recipient: &str,
        decision: &weir_compiler::Decision,
        now: i64,
    ) -> anyhow::Result<()> {
        use weir_compiler::Verdict;
        if decision.duplicates.is_empty()
            || matches!(decision.verdict, Verdict::Reject | Verdict::Tempfail)
        {
            return Ok(());
        }
        let scope = weir_stdlib::Address::parse(recipient)
            .address
            .to_lowercase();
        self.record_duplicates(&scope, &decision.duplicates, now)
    }

    /// Forgets the records older than `cutoff`; returns how many.
    pub fn prune_duplicates(&self, cutoff: i64) -> anyhow::Result<usize> {
        if self.redis.is_some() {
            // Redis expires each record after the retention.
            return Ok(0);
        }
        let mut removed = 0;
        for item in self.duplicates.iter() {
            let (key, value) = item?;
            if decode_time(&value).is_none_or(|t| t < cutoff) {
                self.duplicates.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_per_recipient_and_slide_out_of_the_window() {
        let dir = std::env::temp_dir().join(format!("weir-dup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        assert!(!store.duplicate_seen("a@x", "k", 60, 1000));
        store
            .record_duplicates("a@x", &["k".to_string()], 1000)
            .expect("record");
        assert!(store.duplicate_seen("a@x", "k", 60, 1059));
        assert!(
            !store.duplicate_seen("a@x", "k", 60, 1060),
            "out of the window"
        );
        assert!(
            !store.duplicate_seen("b@x", "k", 60, 1001),
            "another recipient"
        );
        assert!(!store.duplicate_seen("a@x", "other", 60, 1001));
        assert_eq!(store.prune_duplicates(1001).expect("prune"), 1);
        assert!(!store.duplicate_seen("a@x", "k", 60, 1001));
        let _ = std::fs::remove_dir_all(dir);
    }
}
