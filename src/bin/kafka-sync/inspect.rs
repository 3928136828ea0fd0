//! `topics`, `topic create`, `offsets`, `groups`, `lag`: what the cluster holds and how far
//! behind each group is.

use std::collections::BTreeMap;

use kafka_sync::transport::Transport;
use kafka_sync::ErrorKind;
use serde::Serialize;

use crate::output::{ids, opt, print_json, Table};
use crate::Ctx;

type Res = Result<(), Box<dyn std::error::Error>>;

pub fn topics(ctx: &Ctx, names: &[String], all: bool) -> Res {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut cluster = ctx
        .admin
        .describe_cluster((!refs.is_empty()).then_some(&refs[..]))?;
    if !all && refs.is_empty() {
        cluster.topics.retain(|t| !t.internal);
    }
    if ctx.cli_json {
        return print_json(&cluster);
    }
    let brokers: Vec<String> = cluster
        .brokers
        .iter()
        .map(|b| format!("{} ({})", b.id, b.address))
        .collect();
    println!(
        "brokers: {}   controller: {}",
        brokers.join(", "),
        opt(cluster.controller)
    );
    let mut t = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"]);
    for topic in &cluster.topics {
        for p in &topic.partitions {
            t.row(vec![
                topic.name.clone(),
                p.partition.to_string(),
                opt(p.leader),
                ids(&p.replicas),
                ids(&p.isr),
                if p.offline.is_empty() {
                    "-".into()
                } else {
                    ids(&p.offline)
                },
            ]);
        }
    }
    if t.is_empty() {
        println!("no topics");
    } else {
        t.print();
    }
    Ok(())
}

pub fn create_topic(
    ctx: &Ctx,
    name: &str,
    partitions: i32,
    replication: i16,
    if_not_exists: bool,
) -> Res {
    let existing = match ctx.admin.partition_ids(name) {
        Ok(ids) => Some(ids.len()),
        Err(e) if e.kind() == ErrorKind::UnknownTopic => None,
        Err(e) => return Err(e.into()),
    };
    let (created, count) = match existing {
        Some(n) if if_not_exists => (false, n),
        Some(n) => {
            return Err(format!(
            "topic {name:?} already exists with {n} partition(s) (--if-not-exists to accept that)"
        )
            .into())
        }
        None => (true, ctx.admin.ensure_topic(name, partitions, replication)?),
    };
    if ctx.cli_json {
        return print_json(
            &serde_json::json!({"topic": name, "created": created, "partitions": count}),
        );
    }
    if created {
        println!("created topic {name} with {count} partition(s)");
    } else {
        println!("topic {name} exists with {count} partition(s)");
    }
    Ok(())
}

pub fn offsets(ctx: &Ctx, topic: &str) -> Res {
    let offsets = ctx.admin.topic_offsets(topic)?;
    if ctx.cli_json {
        return print_json(&serde_json::json!({"topic": topic, "partitions": offsets}));
    }
    let mut t = Table::new(&["PARTITION", "EARLIEST", "LATEST", "MESSAGES"]);
    let (mut e, mut l) = (0, 0);
    for p in &offsets {
        t.row(vec![
            p.partition.to_string(),
            p.earliest.to_string(),
            p.latest.to_string(),
            (p.latest - p.earliest).to_string(),
        ]);
        e += p.earliest;
        l += p.latest;
    }
    println!("topic {topic}");
    t.print();
    println!("total: {} message(s) stored", l - e);
    Ok(())
}

pub fn groups(ctx: &Ctx) -> Res {
    let groups = ctx.admin.list_groups()?;
    #[derive(Serialize)]
    struct Row {
        group: String,
        state: String,
        protocol_type: String,
        members: Option<usize>,
    }
    let rows: Vec<Row> = groups
        .into_iter()
        .map(|g| {
            let described = ctx.admin.describe_group(&g.group).ok();
            Row {
                state: described
                    .as_ref()
                    .map(|d| d.state.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(g.state),
                members: described.map(|d| d.members.len()),
                group: g.group,
                protocol_type: g.protocol_type,
            }
        })
        .collect();
    if ctx.cli_json {
        return print_json(&rows);
    }
    let mut t = Table::new(&["GROUP", "STATE", "TYPE", "MEMBERS"]);
    for r in &rows {
        t.row(vec![
            r.group.clone(),
            r.state.clone(),
            r.protocol_type.clone(),
            opt(r.members),
        ]);
    }
    if t.is_empty() {
        println!("no consumer groups");
    } else {
        t.print();
    }
    Ok(())
}

/// One partition's lag row.
#[derive(Debug, Serialize)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub high_watermark: i64,
    pub log_start: i64,
    pub lag: i64,
    pub owner: Option<String>,
}

pub fn lag(ctx: &Ctx, group: &str, only: Option<&str>) -> Res {
    let description = ctx.admin.describe_group(group)?;
    let committed = ctx.admin.committed_offsets(group)?;
    let mut topics: BTreeMap<String, BTreeMap<i32, i64>> = committed;
    if let Some(t) = only {
        ctx.admin.partition_ids(t)?; // an unknown topic is an error
        let mine = topics.remove(t).unwrap_or_default();
        topics.clear();
        topics.insert(t.to_string(), mine);
    }
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &description.members {
        for (topic, ps) in &m.assignment {
            for p in ps {
                owners.insert((topic.clone(), *p), m.client_id.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for (topic, commits) in &topics {
        let offsets = match ctx.admin.topic_offsets(topic) {
            Ok(o) => o,
            Err(e) if e.kind() == ErrorKind::UnknownTopic && only.is_none() => continue,
            Err(e) => return Err(e.into()),
        };
        for p in offsets {
            let c = commits.get(&p.partition).copied();
            let from = c.unwrap_or(p.earliest);
            rows.push(LagRow {
                topic: topic.clone(),
                partition: p.partition,
                committed: c,
                high_watermark: p.latest,
                log_start: p.earliest,
                lag: (p.latest - from).max(0),
                owner: owners.get(&(topic.clone(), p.partition)).cloned(),
            });
        }
    }
    let total: i64 = rows.iter().map(|r| r.lag).sum();
    if ctx.cli_json {
        return print_json(&serde_json::json!({
            "group": group,
            "state": description.state,
            "members": description.members.len(),
            "partitions": rows,
            "total_lag": total,
        }));
    }
    println!(
        "group {group}: {} ({} member(s))",
        description.state,
        description.members.len()
    );
    let mut t = Table::new(&[
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "HIGH-WATERMARK",
        "LOG-START",
        "LAG",
        "OWNER",
    ]);
    for r in &rows {
        t.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            opt(r.committed),
            r.high_watermark.to_string(),
            r.log_start.to_string(),
            r.lag.to_string(),
            opt(r.owner.clone()),
        ]);
    }
    if t.is_empty() {
        println!("no committed offsets");
    } else {
        t.print();
    }
    println!("total lag: {total}");
    Ok(())
}
