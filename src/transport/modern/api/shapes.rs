//! Answers checked before `kafka-protocol` decodes them, so that no answer can make the
//! process abort.
//!
//! `kafka-protocol` 0.18 reads an array's length off the wire and reserves that many
//! elements before decoding the first (`Vec::with_capacity(n)`): a 20-byte answer
//! announcing `i32::MAX` topics asks for hundreds of gigabytes, the allocation fails, and
//! Rust aborts the process (not a panic anyone can catch). Java's client refuses such a
//! length (KAFKA-14063) because every element takes at least one byte; `kafka-protocol` has
//! no such check, and its decoders cannot be given one from outside.
//!
//! So every answer is first walked here, field by field, with the layout of its message at
//! its version (the tables in [`client`] and [`groups`], taken from `kafka-protocol`'s
//! generated message definitions and tested against its decoder at every version of
//! [`Api::MIN`](super::Api::MIN)..=[`Api::MAX`](super::Api::MAX), so raising a range or
//! upgrading `kafka-protocol` re-checks them). The walk reserves
//! nothing; wherever the answer announces an array, it checks the announced length against
//! the bytes left, and refuses the answer, naming the field, when the length cannot be
//! true. Only then is the answer decoded, so every reservation `kafka-protocol` makes is at
//! most the bytes left in the answer (times an element's size). Strings and byte fields
//! need no check: `kafka-protocol` checks their length against the bytes left before it
//! copies them.
//!
//! Anything else the walk finds wrong (an answer cut short, a bad string) is left to the
//! decoder, which reads the same fields in the same order and fails at the same place,
//! before reaching any later array, with its own message.

#[rustfmt::skip]
pub(crate) mod client;
#[rustfmt::skip]
pub(crate) mod groups;

/// The layout of the answer to the API `key`, if it is one this transport sends.
pub(crate) fn of_answer(key: kafka_protocol::messages::ApiKey) -> Option<&'static Message> {
    use kafka_protocol::messages::ApiKey as K;
    Some(match key {
        K::ApiVersions => &client::API_VERSIONS_MESSAGE,
        K::Metadata => &client::METADATA_MESSAGE,
        K::Produce => &client::PRODUCE_MESSAGE,
        K::Fetch => &client::FETCH_MESSAGE,
        K::ListOffsets => &client::LIST_OFFSETS_MESSAGE,
        K::FindCoordinator => &groups::FIND_COORDINATOR_MESSAGE,
        K::JoinGroup => &groups::JOIN_GROUP_MESSAGE,
        K::SyncGroup => &groups::SYNC_GROUP_MESSAGE,
        K::Heartbeat => &groups::HEARTBEAT_MESSAGE,
        K::LeaveGroup => &groups::LEAVE_GROUP_MESSAGE,
        K::OffsetCommit => &groups::OFFSET_COMMIT_MESSAGE,
        K::OffsetFetch => &groups::OFFSET_FETCH_MESSAGE,
        K::CreateTopics => &groups::CREATE_TOPICS_MESSAGE,
        K::InitProducerId => &groups::INIT_PRODUCER_ID_MESSAGE,
        K::SaslHandshake => &groups::SASL_HANDSHAKE_MESSAGE,
        K::SaslAuthenticate => &groups::SASL_AUTHENTICATE_MESSAGE,
        K::ListGroups => &groups::LIST_GROUPS_MESSAGE,
        K::DescribeGroups => &groups::DESCRIBE_GROUPS_MESSAGE,
        _ => return None,
    })
}

/// A message's layout: its top-level fields and the version its compact encoding starts at.
#[derive(Debug)]
pub(crate) struct Message {
    /// The message's name, for errors.
    pub name: &'static str,
    /// Its top-level struct.
    pub body: &'static Struct,
    /// The first version using compact lengths and tagged fields (`i16::MAX`: none).
    pub flexible_from: i16,
}

/// A struct's fields, in wire order, and its known tagged fields.
#[derive(Debug)]
pub(crate) struct Struct {
    /// The struct's name, for errors.
    pub name: &'static str,
    /// Its fields.
    pub fields: &'static [Field],
    /// Its known tagged fields (flexible versions only).
    pub tags: &'static [Tag],
}

/// One field and the versions it is on the wire in (both ends included).
#[derive(Debug)]
pub(crate) struct Field {
    /// The field's name, for errors.
    pub name: &'static str,
    /// The first and last version the field is sent in.
    pub versions: (i16, i16),
    /// What is on the wire.
    pub ty: Ty,
}

/// A known tagged field.
#[derive(Debug)]
pub(crate) struct Tag {
    /// Its tag number.
    pub tag: u32,
    /// The field.
    pub field: Field,
}

/// A field's wire type.
#[derive(Debug)]
pub(crate) enum Ty {
    /// A fixed number of bytes (integers, booleans, UUIDs).
    Fixed(usize),
    /// A string (`i16` length, or a compact length in flexible versions).
    Str {
        /// Whether -1 (null) is allowed.
        nullable: bool,
    },
    /// Bytes (`i32` length, or a compact length in flexible versions).
    Bytes {
        /// Whether -1 (null) is allowed.
        nullable: bool,
    },
    /// An array (`i32` length, or a compact length in flexible versions).
    Array {
        /// Whether -1 (null) is allowed.
        nullable: bool,
        /// The elements' type.
        of: &'static Ty,
    },
    /// A struct, inline.
    Struct(&'static Struct),
}

/// Why a walk stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An array announces more elements than there are bytes left: the answer is refused.
    Impossible(String),
    /// The answer ends early or is otherwise malformed: the decoder reports it.
    Malformed,
}

/// Walks `body`, an encoding of `message` at `version`: `Err` with the field, the announced
/// length and the bytes left when an array's length cannot be true.
pub(crate) fn check(message: &Message, version: i16, body: &[u8]) -> Result<(), String> {
    let mut walk = Walk {
        data: body,
        at: 0,
        version,
        flexible: version >= message.flexible_from,
        path: Vec::new(),
    };
    match walk.structure(message.body) {
        Ok(()) | Err(Refusal::Malformed) => Ok(()),
        Err(Refusal::Impossible(why)) => Err(format!("{} v{version} {why}", message.name)),
    }
}

struct Walk<'a> {
    data: &'a [u8],
    at: usize,
    version: i16,
    flexible: bool,
    path: Vec<&'static str>,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<(), Refusal> {
        if self.left() < n {
            return Err(Refusal::Malformed);
        }
        self.at += n;
        Ok(())
    }

    fn int(&mut self, n: usize) -> Result<i64, Refusal> {
        let bytes = self
            .data
            .get(self.at..self.at + n)
            .ok_or(Refusal::Malformed)?;
        self.at += n;
        Ok(bytes.iter().fold(0i64, |v, &b| (v << 8) | i64::from(b)))
    }

    /// An unsigned varint as `kafka-protocol` reads it: at most 5 bytes, kept to 32 bits.
    fn unsigned_varint(&mut self) -> Result<u64, Refusal> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = *self.data.get(self.at).ok_or(Refusal::Malformed)?;
            self.at += 1;
            v |= u32::from(b & 0x7f).wrapping_shl(7 * i);
            if b < 0x80 {
                break;
            }
        }
        Ok(u64::from(v))
    }

    /// A length: `i16`/`i32` (signed, -1 null) or compact (unsigned, 0 null, else n + 1).
    fn length(&mut self, width: usize) -> Result<Option<u64>, Refusal> {
        if self.flexible {
            let n = self.unsigned_varint()?;
            return Ok(n.checked_sub(1));
        }
        let n = self.int(width)?;
        // Sign-extend.
        let n = (n << (64 - 8 * width)) >> (64 - 8 * width);
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(Refusal::Malformed),
            n => Ok(Some(n as u64)),
        }
    }

    fn structure(&mut self, s: &'static Struct) -> Result<(), Refusal> {
        for field in s.fields {
            self.field(field)?;
        }
        if !self.flexible {
            return Ok(());
        }
        let tagged = self.unsigned_varint()?;
        for _ in 0..tagged {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            let known = s.tags.iter().find(|t| u64::from(t.tag) == tag);
            match known {
                // Decoded from the answer itself, as `kafka-protocol` does.
                Some(t) if self.has(&t.field) => self.field(&t.field)?,
                _ => self.take(usize::try_from(size).map_err(|_| Refusal::Malformed)?)?,
            }
        }
        Ok(())
    }

    fn has(&self, field: &Field) -> bool {
        (field.versions.0..=field.versions.1).contains(&self.version)
    }

    fn field(&mut self, field: &'static Field) -> Result<(), Refusal> {
        if !self.has(field) {
            return Ok(());
        }
        self.path.push(field.name);
        self.ty(&field.ty)?;
        self.path.pop();
        Ok(())
    }

    fn ty(&mut self, ty: &'static Ty) -> Result<(), Refusal> {
        match ty {
            Ty::Fixed(n) => self.take(*n),
            Ty::Str { nullable } => self.sized(2, *nullable),
            Ty::Bytes { nullable } => self.sized(4, *nullable),
            Ty::Struct(s) => self.structure(s),
            Ty::Array { nullable, of } => {
                let Some(n) = self.length(4)? else {
                    return if *nullable {
                        Ok(())
                    } else {
                        Err(Refusal::Malformed)
                    };
                };
                let least = self.least(of) as u64;
                if least > 0 && n.saturating_mul(least) > self.left() as u64 {
                    let of = match of {
                        Ty::Struct(s) => format!(" (of {})", s.name),
                        _ => String::new(),
                    };
                    return Err(Refusal::Impossible(format!(
                        "announces {n} entries in {}{of} with {} bytes left",
                        self.path.join("."),
                        self.left()
                    )));
                }
                for _ in 0..n {
                    self.ty(of)?;
                }
                Ok(())
            }
        }
    }

    /// The fewest bytes a value of `ty` takes at this version.
    fn least(&self, ty: &Ty) -> usize {
        let length = |width: usize| if self.flexible { 1 } else { width };
        match ty {
            Ty::Fixed(n) => *n,
            Ty::Str { .. } => length(2),
            Ty::Bytes { .. } | Ty::Array { .. } => length(4),
            Ty::Struct(s) => {
                let fields: usize = s
                    .fields
                    .iter()
                    .filter(|f| self.has(f))
                    .map(|f| self.least(&f.ty))
                    .sum();
                fields + usize::from(self.flexible)
            }
        }
    }

    /// A string or bytes: its length, then that many bytes.
    fn sized(&mut self, width: usize, nullable: bool) -> Result<(), Refusal> {
        match self.length(width)? {
            None if nullable => Ok(()),
            None => Err(Refusal::Malformed),
            Some(n) => self.take(usize::try_from(n).map_err(|_| Refusal::Malformed)?),
        }
    }
}

#[cfg(test)]
mod tests;
