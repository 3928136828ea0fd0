//! `kafka-sync`: the operator CLI. Answers the troubleshooting questions against a real
//! broker: which topics (leaders, replicas, ISR), which offsets, how far behind is a group,
//! what is in the dead-letter queue, replay it; tail a topic, produce JSON lines.
//!
//! Output is an aligned table by default, JSON with `--json`. Errors name what was wrong
//! (broker unreachable, unknown topic or group, bad argument or input line) and come within
//! `--timeout`; the exit status is 0 on success, 1 on an error, 2 on bad arguments.

mod dlq;
mod inspect;
mod output;
mod produce;
mod tail;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kafka_sync::transport::ModernTransport;
use kafka_sync::{Config, Kafka};

/// Inspect and operate a kafka-sync system on a Kafka broker.
#[derive(Debug, Parser)]
#[command(name = "kafka-sync", version, propagate_version = true)]
pub struct Cli {
    /// Bootstrap brokers, host:port,...
    #[arg(
        long,
        global = true,
        env = "KAFKA_BROKERS",
        default_value = "localhost:9092"
    )]
    pub brokers: String,
    /// Print JSON (one document, or one object per line for `tail`) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bound, in seconds, on connecting and on each broker request.
    #[arg(long, global = true, default_value_t = 5)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List topics with their partitions' leaders, replicas and in-sync replicas.
    Topics {
        /// Only these topics (default: all but Kafka's internal ones).
        names: Vec<String>,
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(long)]
        all: bool,
    },
    /// Create or manage a topic.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Earliest and latest offset of each partition of a topic.
    Offsets {
        /// The topic.
        topic: String,
    },
    /// List consumer groups with their state and members.
    Groups,
    /// Committed offset, high watermark and lag per partition of a group, and the total.
    Lag {
        /// The consumer group.
        group: String,
        /// Only this topic (also shows its partitions the group never committed).
        topic: Option<String>,
    },
    /// Print a topic's records as decoded envelopes, one per line.
    Tail {
        /// The topic.
        topic: String,
        /// Start at each partition's earliest offset (default: the latest, new records only).
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<usize>,
        /// Only this partition.
        #[arg(long)]
        partition: Option<i32>,
        /// Stop after this many seconds without a new record (default: keep following).
        #[arg(long)]
        idle: Option<u64>,
    },
    /// Send JSON lines from stdin to a topic, one envelope per line.
    ///
    /// With --type, each line is a payload wrapped in a new envelope of that type; without,
    /// each line must be a whole envelope. Every line is checked before anything is sent:
    /// a bad line is an error naming its line number and nothing is sent.
    Produce {
        /// The topic (must exist).
        topic: String,
        /// The message type to wrap each line's payload in.
        #[arg(long = "type", value_name = "TYPE")]
        message_type: Option<String>,
        /// Correlation id of the new envelopes (default: each its own id).
        #[arg(long)]
        correlation_id: Option<String>,
        /// Source service written into the new envelopes.
        #[arg(long, default_value = "kafka-sync-cli")]
        source: String,
    },
    /// Inspect and replay the dead-letter queue.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic name.
        name: String,
        /// Partitions.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replicas per partition (-1: the broker's default).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication: i16,
        /// Succeed when the topic exists already.
        #[arg(long)]
        if_not_exists: bool,
    },
}

/// What every command works with.
pub struct Ctx {
    pub cli_json: bool,
    pub config: Config,
    pub admin: Arc<ModernTransport>,
}

impl Ctx {
    /// A `Kafka` over the same transport, for producing.
    pub fn kafka(&self) -> kafka_sync::Result<Kafka> {
        Kafka::with_transport(self.config.clone(), self.admin.clone())
    }
}

fn context(cli: &Cli) -> kafka_sync::Result<Ctx> {
    let mut config = Config::from_env()?;
    config.brokers = cli
        .brokers
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    let bound = Duration::from_secs(cli.timeout.max(1));
    config.request_timeout = bound;
    config.connect_timeout = bound.min(Duration::from_secs(3));
    config.producer.retry.max_elapsed = bound * 2;
    config.producer.delivery_timeout = bound * 3;
    config.producer.batch_timeout = Duration::from_millis(2);
    config.client_id = "kafka-sync-cli".into();
    let admin = Arc::new(ModernTransport::new(&config)?);
    Ok(Ctx {
        cli_json: cli.json,
        config,
        admin,
    })
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let ctx = context(&cli)?;
    match cli.command {
        Command::Topics { names, all } => inspect::topics(&ctx, &names, all),
        Command::Topic(TopicCommand::Create {
            name,
            partitions,
            replication,
            if_not_exists,
        }) => inspect::create_topic(&ctx, &name, partitions, replication, if_not_exists),
        Command::Offsets { topic } => inspect::offsets(&ctx, &topic),
        Command::Groups => inspect::groups(&ctx),
        Command::Lag { group, topic } => inspect::lag(&ctx, &group, topic.as_deref()),
        Command::Tail {
            topic,
            from_beginning,
            max,
            partition,
            idle,
        } => tail::tail(&ctx, &topic, from_beginning, max, partition, idle),
        Command::Produce {
            topic,
            message_type,
            correlation_id,
            source,
        } => produce::produce(
            &ctx,
            &topic,
            message_type.as_deref(),
            correlation_id.as_deref(),
            &source,
            std::io::stdin().lock(),
        ),
        Command::Dlq(cmd) => dlq::run(&ctx, cmd),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("kafka-sync: error: {e}");
        std::process::exit(1);
    }
}
