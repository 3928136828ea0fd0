//! Reading a Produce answer: each answered partition's records get their offsets (base
//! offset + position) or the partition's error; duplicates of an idempotent retry count as
//! written.

use std::collections::BTreeMap;

use kafka_protocol::messages::ProduceResponse;

use super::errors::{code, code_error_with, is_stale_metadata};
use super::produce::InFlight;
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};

/// Fills the results of `f`'s partitions from `answer`. Returns whether metadata is stale,
/// and each answered partition's error code.
pub(super) fn apply_answer(
    answer: &ProduceResponse,
    topic: &str,
    f: &InFlight,
    by_partition: &BTreeMap<i32, Vec<usize>>,
    results: &mut [Option<Result<Delivery>>],
) -> (bool, Vec<(i32, i16)>) {
    let mut stale = false;
    let mut codes = Vec::new();
    for t in answer
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
    {
        for pr in &t.partition_responses {
            let p = pr.index;
            let Some(indices) = by_partition.get(&p).filter(|_| f.partitions.contains(&p)) else {
                continue;
            };
            codes.push((p, pr.error_code));
            // A duplicate of a batch already written (idempotent retry) is a success; when
            // the broker no longer knows where it wrote it (base offset -1), offsets are -1.
            if pr.error_code == code::NONE || pr.error_code == code::DUPLICATE_SEQUENCE_NUMBER {
                let known = pr.base_offset >= 0;
                for (n, &i) in indices.iter().enumerate() {
                    results[i] = Some(Ok(Delivery {
                        partition: p,
                        offset: if known { pr.base_offset + n as i64 } else { -1 },
                    }));
                }
            } else {
                stale |= is_stale_metadata(pr.error_code);
                // Produce answers "unknown partition" for a partition whose leader has not
                // heard of it yet (just created or added): retried after a metadata refresh,
                // like the Java client. A topic that cannot exist fails in metadata instead.
                let c = pr.error_code;
                let e = code_error_with(
                    pr.error_code,
                    "produce",
                    pr.error_message.as_ref().map(|m| m.as_str()),
                )
                .with_topic(topic)
                .with_partition(p)
                .with_broker(f.addr.clone());
                let e = if c == code::UNKNOWN_TOPIC_OR_PARTITION {
                    Error::new(ErrorKind::BrokerRetriable, e.message().to_string())
                        .with_broker_code(c)
                        .with_topic(topic)
                        .with_partition(p)
                        .with_broker(f.addr.clone())
                } else {
                    e
                };
                for &i in indices {
                    results[i] = Some(Err(e.detached()));
                }
            }
        }
    }
    (stale, codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::modern::cluster::topic_name;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    fn answer(code: i16, base: i64) -> ProduceResponse {
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(topic_name("t"))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(0)
                .with_error_code(code)
                .with_base_offset(base)])])
    }

    fn apply(code: i16, base: i64) -> Vec<Result<Delivery>> {
        let f = InFlight {
            addr: "b:1".into(),
            sent: (1, 9),
            partitions: vec![0],
        };
        let by_partition = BTreeMap::from([(0, vec![0, 1])]);
        let mut results = vec![None, None];
        apply_answer(&answer(code, base), "t", &f, &by_partition, &mut results);
        results.into_iter().map(Option::unwrap).collect()
    }

    #[test]
    fn a_duplicate_answered_without_its_offset_is_a_success_at_offset_minus_one() {
        let offsets: Vec<i64> = apply(code::DUPLICATE_SEQUENCE_NUMBER, -1)
            .into_iter()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![-1, -1], "never base -1 + n");
        let offsets: Vec<i64> = apply(code::DUPLICATE_SEQUENCE_NUMBER, 40)
            .into_iter()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![40, 41]);
    }

    #[test]
    fn an_unknown_partition_answer_is_retried_and_a_too_large_one_is_not() {
        for r in apply(code::UNKNOWN_TOPIC_OR_PARTITION, -1) {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokerRetriable, "{e}");
            assert_eq!(e.context().partition, Some(0));
            assert_eq!(e.broker_code(), Some(code::UNKNOWN_TOPIC_OR_PARTITION));
        }
        for r in apply(code::MESSAGE_TOO_LARGE, -1) {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::MessageTooLarge);
        }
    }
}
