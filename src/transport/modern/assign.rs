//! Partition assignment for the classic consumer-group protocol: the `range` and
//! `roundrobin` strategies as the Java client computes them, and the subscription and
//! assignment bytes members exchange (Kafka's `ConsumerProtocol`, so Java and other clients
//! can share a group with us). Pure functions, tested without a broker.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::cluster::topic_name;

pub(crate) use crate::config::Assignor;

impl Assignor {
    /// Both strategies, this one first.
    pub(super) fn preference(self) -> [Assignor; 2] {
        match self {
            Assignor::Range => [Assignor::Range, Assignor::RoundRobin],
            Assignor::RoundRobin => [Assignor::RoundRobin, Assignor::Range],
        }
    }
}

/// Member id → topic → partitions.
pub(super) type Plan = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Spreads the partitions of each topic (`topic → partition count`) over the members
/// subscribed to it (`(member id, topics)`). Every member appears in the plan, possibly with
/// nothing.
pub(super) fn assign(
    strategy: Assignor,
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, usize>,
) -> Plan {
    let mut sorted: Vec<&(String, Vec<String>)> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut plan: Plan = sorted
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    let subscribed = |topic: &str| -> Vec<&String> {
        sorted
            .iter()
            .filter(|(_, topics)| topics.iter().any(|t| t == topic))
            .map(|(m, _)| m)
            .collect()
    };
    match strategy {
        Assignor::Range => {
            for (topic, &count) in partitions {
                let who = subscribed(topic);
                if who.is_empty() {
                    continue;
                }
                let (per, extra) = (count / who.len(), count % who.len());
                for (i, m) in who.iter().enumerate() {
                    let start = i * per + i.min(extra);
                    let len = per + usize::from(i < extra);
                    let ps: Vec<i32> = (start..start + len).map(|p| p as i32).collect();
                    if !ps.is_empty() {
                        plan.entry((*m).clone())
                            .or_default()
                            .insert(topic.clone(), ps);
                    }
                }
            }
        }
        Assignor::RoundRobin => {
            let mut turn = 0usize;
            for (topic, &count) in partitions {
                let who = subscribed(topic);
                if who.is_empty() {
                    continue;
                }
                for p in 0..count {
                    // Deal in member order over all members, skipping those not subscribed.
                    let m = loop {
                        let candidate = &sorted[turn % sorted.len()].0;
                        turn += 1;
                        if who.contains(&candidate) {
                            break candidate;
                        }
                    };
                    plan.entry(m.clone())
                        .or_default()
                        .entry(topic.clone())
                        .or_default()
                        .push(p as i32);
                }
            }
        }
    }
    plan
}

/// A member's subscription bytes (`ConsumerProtocolSubscription` v0: version, topics).
pub(super) fn encode_subscription(topics: &[&str]) -> Bytes {
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    versioned(0, |buf| s.encode(buf, 0))
}

/// The topics of a member's subscription bytes (any version: fields newer than we know are
/// ignored, as the Java client does).
pub(super) fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>, String> {
    let (version, mut body) = split_version(bytes)?;
    let shape = &super::api::shapes::groups::CONSUMER_SUBSCRIPTION_MESSAGE;
    super::api::shapes::check(shape, version.min(3), &body)?;
    let s = ConsumerProtocolSubscription::decode(&mut body, version.min(3))
        .map_err(|e| format!("bad subscription v{version}: {e:#}"))?;
    Ok(s.topics.iter().map(|t| t.as_str().to_string()).collect())
}

/// A member's assignment bytes (`ConsumerProtocolAssignment` v0).
pub(super) fn encode_assignment(topics: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        topics
            .iter()
            .map(|(t, ps)| {
                TopicPartition::default()
                    .with_topic(topic_name(t))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    versioned(0, |buf| a.encode(buf, 0))
}

/// Topic → partitions of an assignment (empty bytes: nothing assigned).
pub(super) fn decode_assignment(bytes: &Bytes) -> Result<BTreeMap<String, Vec<i32>>, String> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let (version, mut body) = split_version(bytes)?;
    let shape = &super::api::shapes::groups::CONSUMER_ASSIGNMENT_MESSAGE;
    super::api::shapes::check(shape, version.min(3), &body)?;
    let a = ConsumerProtocolAssignment::decode(&mut body, version.min(3))
        .map_err(|e| format!("bad assignment v{version}: {e:#}"))?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in a.assigned_partitions {
        out.entry(tp.topic.0.as_str().to_string())
            .or_default()
            .extend(tp.partitions);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
        ps.dedup();
    }
    Ok(out)
}

fn versioned<E>(version: i16, encode: impl FnOnce(&mut BytesMut) -> Result<(), E>) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    // Encoding an in-memory struct with a valid version cannot fail.
    if encode(&mut buf).is_err() {
        buf.truncate(2);
    }
    buf.freeze()
}

fn split_version(bytes: &Bytes) -> Result<(i16, Bytes), String> {
    if bytes.len() < 2 {
        return Err("group protocol bytes shorter than their version".to_string());
    }
    let mut body = bytes.clone();
    let version = body.get_i16();
    if version < 0 {
        return Err(format!("group protocol bytes with version {version}"));
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(list: &[(&str, usize)]) -> BTreeMap<String, usize> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn of(plan: &Plan, m: &str, t: &str) -> Vec<i32> {
        plan[m].get(t).cloned().unwrap_or_default()
    }

    #[test]
    fn range_gives_consecutive_partitions_extra_to_the_first() {
        let ms = members(&[("c", &["t"]), ("a", &["t"]), ("b", &["t"])]);
        let plan = assign(Assignor::Range, &ms, &counts(&[("t", 7)]));
        assert_eq!(of(&plan, "a", "t"), vec![0, 1, 2]);
        assert_eq!(of(&plan, "b", "t"), vec![3, 4]);
        assert_eq!(of(&plan, "c", "t"), vec![5, 6]);
        let plan = assign(Assignor::Range, &ms, &counts(&[("t", 6)]));
        for m in ["a", "b", "c"] {
            assert_eq!(of(&plan, m, "t").len(), 2);
        }
    }

    #[test]
    fn range_only_counts_members_subscribed_to_the_topic() {
        let ms = members(&[("a", &["t", "u"]), ("b", &["u"]), ("c", &[])]);
        let plan = assign(Assignor::Range, &ms, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(of(&plan, "a", "t"), vec![0, 1, 2]);
        assert_eq!(of(&plan, "a", "u"), vec![0]);
        assert_eq!(of(&plan, "b", "u"), vec![1]);
        assert!(plan["c"].is_empty(), "present with nothing");
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let ms = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        for s in [Assignor::Range, Assignor::RoundRobin] {
            let plan = assign(s, &ms, &counts(&[("t", 2)]));
            let total: usize = plan
                .values()
                .map(|t| t.values().map(Vec::len).sum::<usize>())
                .sum();
            assert_eq!(total, 2, "{s:?}");
        }
    }

    #[test]
    fn round_robin_deals_in_turn_across_topics() {
        let ms = members(&[("b", &["t", "u"]), ("a", &["t", "u"])]);
        let plan = assign(Assignor::RoundRobin, &ms, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(of(&plan, "a", "t"), vec![0, 2]);
        assert_eq!(of(&plan, "b", "t"), vec![1]);
        assert_eq!(of(&plan, "a", "u"), vec![1]);
        assert_eq!(of(&plan, "b", "u"), vec![0]);
    }

    #[test]
    fn subscription_and_assignment_bytes_round_trip() {
        let bytes = encode_subscription(&["orders", "retry"]);
        assert_eq!(&bytes[..2], &[0, 0], "version 0 first");
        assert_eq!(
            decode_subscription(&bytes).unwrap(),
            vec!["orders", "retry"]
        );

        let mut topics = BTreeMap::new();
        topics.insert("orders".to_string(), vec![0, 3, 5]);
        let bytes = encode_assignment(&topics);
        assert_eq!(decode_assignment(&bytes).unwrap(), topics);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_subscription(&Bytes::from_static(&[0xff, 0xff, 0])).is_err());
    }

    #[test]
    fn a_newer_subscription_version_is_read_for_its_topics() {
        // v3 as a Java 3.x client writes it: topics, user data, owned partitions,
        // generation, rack.
        let s = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")])
            .with_generation_id(4);
        let bytes = versioned(3, |buf| s.encode(buf, 3));
        assert_eq!(decode_subscription(&bytes).unwrap(), vec!["t"]);
    }

    #[test]
    fn names_round_trip() {
        for a in [Assignor::Range, Assignor::RoundRobin] {
            assert_eq!(Assignor::from_protocol_name(a.protocol_name()), Some(a));
        }
        assert_eq!(Assignor::from_protocol_name("cooperative-sticky"), None);
        assert_eq!(Assignor::default(), Assignor::Range);
        assert_eq!(Assignor::RoundRobin.preference()[0], Assignor::RoundRobin);
    }
}
