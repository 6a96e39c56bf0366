//! A test-only switch that turns single fault guards off, so that each fault test can show
//! it would fail without its guard (the `#[ignore]`d twins in `tests/it`).
//!
//! `NETSEC_TEST_DISABLE_GUARD=<name>[,<name>...]` names the guards to disable; unset, as in
//! any real use, every guard is on. It is read once, here and nowhere else, and each guard
//! asks with its typed [`Guard`]. A disabled guard reproduces exactly the defect it exists
//! to prevent and changes nothing else. It is not a user setting and is not documented as
//! one.

use std::sync::OnceLock;

/// The variable the integration tests set in a twin's `netsec` processes.
pub const ENV: &str = "NETSEC_TEST_DISABLE_GUARD";

/// A fault guard that a test can disable (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// A run created with an idempotency key (and a logged model with its trial key tag,
    /// and a run's output link) is looked up before each attempt to create it, so a
    /// `runs/create` (`logged-models`, `runs/outputs`) whose answer was lost is found, not
    /// made again.
    CreateOnce,
    /// A registry version is looked up by its sha256 tag before one is created, so a
    /// `model-versions/create` whose answer was lost is found, not made again.
    RegistryOnce,
    /// A publication writes the pointer last, after the model file and its metadata.
    PublishOrder,
    /// `serve` loads a model only when its bytes hash to the pointer's sha256.
    ServeVerify,
    /// `serve` on SIGTERM: `/readyz` answers 503 for the drain delay, then the requests
    /// in flight are finished before the process exits.
    Drain,
    /// A cancelled sweep still stores the trials that were running when it was cancelled.
    CancelKeepsResults,
    /// A promotion records its decision only if the alias still holds the version it was
    /// judged against (else it evaluates again), so concurrent promotions have one winner.
    PromoteRecheck,
    /// Sweeps left `running` by a process that died are marked `killed` (by `netsec sync`
    /// and the next sweep), so that neither the run store nor MLflow shows them RUNNING.
    ReapDeadSweeps,
    /// `serve` on shutdown writes the predictions still queued for its prediction log.
    LogDrain,
    /// An outbox record is marked sent only after the server accepted all of it, so a
    /// sender killed mid-record sends it again next time.
    SentAfterAck,
}

impl Guard {
    /// Every guard, for parsing and for the tests.
    pub const ALL: [Guard; 10] = [
        Guard::CreateOnce,
        Guard::RegistryOnce,
        Guard::PublishOrder,
        Guard::ServeVerify,
        Guard::Drain,
        Guard::CancelKeepsResults,
        Guard::PromoteRecheck,
        Guard::ReapDeadSweeps,
        Guard::LogDrain,
        Guard::SentAfterAck,
    ];

    /// The name [`ENV`] takes.
    pub const fn name(self) -> &'static str {
        match self {
            Guard::CreateOnce => "create-once",
            Guard::RegistryOnce => "registry-once",
            Guard::PublishOrder => "publish-order",
            Guard::ServeVerify => "serve-verify",
            Guard::Drain => "drain",
            Guard::CancelKeepsResults => "cancel-keeps-results",
            Guard::PromoteRecheck => "promote-recheck",
            Guard::ReapDeadSweeps => "reap-dead-sweeps",
            Guard::LogDrain => "log-drain",
            Guard::SentAfterAck => "sent-after-ack",
        }
    }

    /// Whether a test turned this guard off in this process.
    pub fn disabled(self) -> bool {
        static DISABLED: OnceLock<Vec<Guard>> = OnceLock::new();
        DISABLED
            .get_or_init(|| parse(std::env::var(ENV).as_deref().unwrap_or("")))
            .contains(&self)
    }
}

/// The guards a value of [`ENV`] names; an unknown name is a test's typo, said in the log.
fn parse(value: &str) -> Vec<Guard> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Guard::ALL.iter().find(|g| g.name() == name) {
            Some(guard) => {
                tracing::debug!(guard = name, "fault guard disabled (test-only switch)");
                out.push(*guard);
            }
            None => tracing::warn!("{ENV}: no guard is called {name:?}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_are_ignored() {
        for guard in Guard::ALL {
            assert_eq!(parse(guard.name()), [guard]);
        }
        assert_eq!(
            parse(" drain,publish-order ,, nope"),
            [Guard::Drain, Guard::PublishOrder]
        );
        assert!(parse("").is_empty());
    }
}
