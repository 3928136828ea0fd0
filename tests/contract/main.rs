//! The consumer's contract, one scenario per file, each run twice by the same code: on the
//! in-memory broker (`…::memory::…`, no broker needed: `make test-memory`) and on the modern
//! transport against the real broker (`…::kafka::…`, `KAFKA_TEST_BROKERS`, default
//! 127.0.0.1:9092). The memory broker is as strict as Kafka where these scenarios look
//! (eager rebalances, generation-checked commits, fault hooks), so a bug the broker shows
//! does not pass in memory.

#[path = "../common/mod.rs"]
mod common;
mod env;

/// Makes `mod memory` and `mod kafka`, each with one `#[test]` per `name => scenario`
/// calling `scenario(&mut Env::new(kind))`.
macro_rules! contract {
    ($($test:ident => $scenario:path),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $test() {
                    $scenario(&mut crate::env::Env::new(crate::env::Kind::Memory));
                }
            )*
        }
        mod kafka {
            $(
                #[test]
                fn $test() {
                    $scenario(&mut crate::env::Env::new(crate::env::Kind::Kafka));
                }
            )*
        }
    };
}

mod close_commits;
mod close_while_stuck;
mod commit_interval_zero;
mod commit_rules;
mod health_after_missed_polls;
mod outcomes;
mod rebalance_waits_for_a_call;
mod rejoin_then_poll_fails;
