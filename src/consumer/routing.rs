//! Which consumer takes a retry entry back: the retry topic is read under a group of each
//! consumer's own, derived from its group and the topics it consumes
//! ([`ConsumerConfig::retry_group_of`](crate::ConsumerConfig::retry_group_of)), and a
//! consumer takes only the entries parked from its own topics.
//!
//! ```text
//!  group g, consumer 1 reads A, consumer 2 reads B, both park on `retry`
//!  consumer 1: reads `retry` as g.retry.<hash(A)> ─ entry from A ─▶ handled
//!                                                  └ entry from B ─▶ passed over, committed
//!  consumer 2: reads `retry` as g.retry.<hash(B)> ─ entry from B ─▶ handled
//!                                                  └ entry from A ─▶ passed over, committed
//!  two processes of consumer 1 (same g, same A): one group, the partitions split
//! ```

use std::collections::BTreeSet;

use crate::config::Config;

/// How one consumer reads the retry topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryRoute {
    /// The retry topic.
    pub(crate) topic: String,
    /// The consumer group it is read under.
    pub(crate) group: String,
    /// The topics whose entries it takes back; empty: every entry of its group (a consumer
    /// of the retry topic alone).
    origins: BTreeSet<String>,
}

impl RetryRoute {
    /// The route of a consumer of `config.group_id` consuming `topics` (the retry topic
    /// among them or not).
    pub(crate) fn new(config: &Config, topics: &[String]) -> Self {
        let c = &config.consumer;
        let group = &config.group_id;
        RetryRoute {
            topic: c.retry_topic_of(group),
            group: c.retry_group_of(group, topics),
            origins: c.retry_origins(group, topics).into_iter().collect(),
        }
    }

    /// The topics whose entries it takes back (empty: all).
    pub(crate) fn origins(&self) -> &BTreeSet<String> {
        &self.origins
    }

    /// Whether a retry entry read from `topic`, parked from `origin`, is this consumer's:
    /// entries on another topic than the retry topic are taken whatever their origin.
    pub(crate) fn takes(&self, topic: &str, origin: &[u8]) -> bool {
        topic != self.topic
            || self.origins.is_empty()
            || std::str::from_utf8(origin).is_ok_and(|o| self.origins.contains(o))
    }

    /// Whether entries read from `topic` are taken by their origin topic.
    pub(crate) fn filters(&self, topic: &str) -> bool {
        topic == self.topic && !self.origins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_takes_the_entries_of_its_own_topics_only() {
        let mut config = Config::in_memory();
        config.group_id = "g".into();
        let a = RetryRoute::new(&config, &["A".into(), "retry".into()]);
        let b = RetryRoute::new(&config, &["B".into()]);
        assert_ne!(a.group, b.group);
        assert!(a.group.starts_with("g.retry."));
        assert!(a.takes("retry", b"A") && !a.takes("retry", b"B"));
        assert!(b.takes("retry", b"B") && !b.takes("retry", b"A"));
        // Not the retry topic: every entry is taken.
        assert!(a.takes("other", b"B") && !a.filters("other"));
        // The order of the topics does not matter.
        let ab = RetryRoute::new(&config, &["A".into(), "B".into()]);
        assert_eq!(ab, RetryRoute::new(&config, &["B".into(), "A".into()]));
        // The retry topic alone: every entry of the group.
        let all = RetryRoute::new(&config, &["retry".into()]);
        assert!(all.takes("retry", b"anything") && !all.filters("retry"));
    }
}
