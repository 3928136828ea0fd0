//! The scraping pipeline's typed payloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A URL for a scraper to fetch. Topic `scraping-tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapingTask {
    /// The page to fetch.
    pub url: String,
    /// Higher runs sooner; 0 is normal.
    #[serde(default)]
    pub priority: i32,
    /// Link depth from the seed URL.
    #[serde(default)]
    pub depth: u32,
    /// Free-form settings for the scraper (user agent, headers, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl ScrapingTask {
    /// A task for `url` with normal priority at depth 0.
    pub fn new(url: impl Into<String>) -> Self {
        ScrapingTask {
            url: url.into(),
            priority: 0,
            depth: 0,
            options: BTreeMap::new(),
        }
    }
}

/// A fetched page. Topic `scraped-data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapedData {
    /// The page that was fetched.
    pub url: String,
    /// The HTTP status code.
    pub status_code: u16,
    /// The response body.
    pub html: String,
    /// Selected response headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Structured content extracted from a page. Topic `parsed-data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedData {
    /// The page the data came from.
    pub url: String,
    /// The page title.
    pub title: String,
    /// The main text.
    pub content: String,
    /// Links found on the page.
    #[serde(default)]
    pub links: Vec<String>,
    /// Other extracted fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}
