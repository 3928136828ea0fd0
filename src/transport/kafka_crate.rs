//! WIP
use super::*;
/// WIP
#[derive(Debug)]
pub struct KafkaCrateTransport;
impl KafkaCrateTransport {
    /// WIP
    pub fn new(_config: &Config) -> Result<Self> {
        Ok(KafkaCrateTransport)
    }
}
