//! CreateTopics: a service ensures its topics exist with the partitions and replication it
//! needs. Sent to the controller (any broker forwards it on KRaft clusters); an existing
//! topic is left as it is.

use crate::retry::Doubling;
use std::time::Instant;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::CreateTopicsRequest;

use kafka_protocol::protocol::StrBytes;

use super::cluster::{is_final, topic_name, Cluster, BACKOFF_MAX, BACKOFF_START};
use super::errors::{code, code_error_with, code_kind};
use super::offsets::{list_offsets, LATEST};
use crate::config::validate_topic_name;
use crate::error::{Error, Result};

/// Creates `name` with `partitions` partitions and `replication` replicas (-1 for either:
/// the broker's default) and the topic-level `configs` (e.g. `max.message.bytes`) unless it
/// exists, then waits until metadata shows every partition with a leader. Returns the topic's
/// partition count (an existing topic's may differ from `partitions`; its configs are left as
/// they are). Bounded by `request_timeout` for the creation plus `request_timeout` for the
/// leaders to answer.
pub(super) fn ensure_topic(
    cluster: &mut Cluster,
    name: &str,
    partitions: i32,
    replication: i16,
    configs: &[(&str, &str)],
) -> Result<usize> {
    validate_topic_name(name)?;
    if partitions == 0 || partitions < -1 {
        return Err(Error::config(
            "partitions",
            partitions,
            "must be at least 1 (or -1: the broker's default)",
        ));
    }
    if replication == 0 || replication < -1 {
        return Err(Error::config(
            "replication",
            replication,
            "must be at least 1 (or -1: the broker's default)",
        ));
    }
    let started = Instant::now();
    let wait = cluster.settings().request_timeout;
    let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
    let created = loop {
        // Metadata without topics: brokers and the controller.
        cluster.metadata(Some(&[]), true)?;
        // The controller metadata names, else (it is down, or not named) any broker that
        // answers: a KRaft broker forwards the request to the controller, an older one
        // answers "not controller" and the loop asks again with fresh metadata.
        let addr = match cluster.controller_addr() {
            Some(a) if cluster.conn(&a).is_ok() => a,
            _ => cluster.any_addr()?,
        };
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )])
            .with_timeout_ms(wait.as_millis().min(i32::MAX as u128) as i32)
            .with_validate_only(false);
        let answer = match cluster.call(&addr, &request, wait) {
            Ok(answer) => answer,
            Err(e) if !is_final(&e) && started.elapsed() + backoff.peek() <= wait => {
                log::debug!("modern: creating {name} through {addr}: {e}; trying again");
                std::thread::sleep(backoff.next_wait());
                continue;
            }
            Err(e) => return Err(e.with_topic(name)),
        };
        let (error, message) = answer
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .map(|t| (t.error_code, t.error_message.clone()))
            .unwrap_or((code::NONE, None));
        match error {
            code::NONE => {
                log::info!(
                    "modern: created topic {name} ({partitions} partitions, replication {replication})"
                );
                break true;
            }
            code::TOPIC_ALREADY_EXISTS => break false,
            c if code_kind(c).is_retriable() && started.elapsed() + backoff.peek() <= wait => {
                log::debug!("modern: creating {name}: code {c}; trying again");
                std::thread::sleep(backoff.next_wait());
            }
            c => {
                return Err(code_error_with(c, "creating the topic", message.as_deref())
                    .with_topic(name)
                    .with_broker(addr));
            }
        }
    };
    let meta = cluster.topic_with_leaders(name)?;
    if created {
        // Metadata names the leaders a moment before they accept requests (Kafka 4 answers
        // NotLeaderOrFollower for a few milliseconds): wait until each one answers.
        let ids: Vec<i32> = meta.partitions.iter().map(|p| p.id).collect();
        list_offsets(cluster, name, &ids, LATEST)?;
    }
    Ok(meta.partitions.len())
}
