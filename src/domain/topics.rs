//! The scraping pipeline's topic names.

/// Tasks for scraper services; produced by the URL manager.
pub const SCRAPING_TASKS: &str = "scraping-tasks";
/// Raw HTML fetched by scrapers; consumed by parsers.
pub const SCRAPED_DATA: &str = "scraped-data";
/// Structured data extracted by parsers; consumed by storage services.
pub const PARSED_DATA: &str = "parsed-data";
/// Messages that could not be handled, with the reason; consumed by the dead-letter handler.
pub const DEAD_LETTER: &str = "dead-letter";
/// Messages parked for a later attempt; consumed by every service.
pub const RETRY: &str = "retry";

/// Every pipeline topic, in pipeline order.
pub const ALL: [&str; 5] = [
    SCRAPING_TASKS,
    SCRAPED_DATA,
    PARSED_DATA,
    DEAD_LETTER,
    RETRY,
];

/// Checks a topic name against Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`,
/// and not `.` or `..`; the error names the value and the rule it breaks.
///
/// ```
/// use kafka_sync::domain::topics::validate_topic_name;
/// assert!(validate_topic_name("scraping-tasks").is_ok());
/// assert!(validate_topic_name("bad topic").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> crate::Result<()> {
    crate::config::validate_topic_name(name)
}
