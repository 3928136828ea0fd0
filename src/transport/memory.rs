//! WIP
use super::*;
/// WIP
#[derive(Debug, Default)]
pub struct MemoryTransport;
impl MemoryTransport {
    /// WIP
    pub fn new() -> Self {
        MemoryTransport
    }
}
