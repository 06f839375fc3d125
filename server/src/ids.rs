//! Typed identifiers. Names of namespaces, tables and columns are case-insensitive and
//! stored lower-cased; user and table ids are numbers that never get reused.

use crate::error::{KalamError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier accepted for namespaces, tables and columns.
pub(crate) const MAX_IDENT_LEN: usize = 64;

/// Checks `[A-Za-z_][A-Za-z0-9_]*` and the length limit, returning the lower-cased name.
pub(crate) fn normalize_ident(kind: &str, name: &str) -> Result<String> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
        _ => false,
    };
    if !valid {
        return Err(KalamError::Validation(format!(
            "invalid {kind} name '{name}': use letters, digits and '_', starting with a letter or '_'"
        )));
    }
    if name.len() > MAX_IDENT_LEN {
        return Err(KalamError::Validation(format!("{kind} name '{name}' is longer than {MAX_IDENT_LEN} characters")));
    }
    Ok(name.to_ascii_lowercase())
}

/// A namespace name (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct NamespaceId(String);

impl NamespaceId {
    pub(crate) fn new(name: &str) -> Result<Self> {
        Ok(NamespaceId(normalize_ident("namespace", name)?))
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a storage (where tables' cold files live), lower-cased like other names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct StorageId(String);

impl StorageId {
    /// The built-in storage: `{data_dir}/storage`.
    pub(crate) const LOCAL: &'static str = "local";

    pub(crate) fn new(id: &str) -> Result<Self> {
        Ok(StorageId(normalize_ident("storage", id)?))
    }
    pub(crate) fn local() -> Self {
        StorageId(Self::LOCAL.into())
    }
    pub(crate) fn is_local(&self) -> bool {
        self.0 == Self::LOCAL
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Internal, never-reused id of a table; the prefix of all its row keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct TableId(pub u64);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user's stable id: the partition key of their rows in USER tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct UserId(pub u64);

impl UserId {
    /// The bootstrap `root` account.
    pub(crate) const ROOT: UserId = UserId(1);
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which slice of a table a row lives in: a user's partition of a USER table, or the one
/// shared partition of a SHARED table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Partition {
    Shared,
    User(UserId),
}

impl Partition {
    /// Key bytes; `0` is never a user id, so the shared partition cannot collide.
    pub(crate) fn key(self) -> u64 {
        match self {
            Partition::Shared => 0,
            Partition::User(u) => u.0,
        }
    }

    /// Inverse of [`Partition::key`].
    pub(crate) fn from_key(key: u64) -> Partition {
        if key == 0 { Partition::Shared } else { Partition::User(UserId(key)) }
    }
}

/// A data group: the unit of replication and of `_updated` order. Each group has its own
/// clock, so a partition's commit order equals its `_updated` order however a node
/// interleaves the groups it applies (docs/cluster.md "Writes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct DataGroup(pub u16);

/// Where table partitions live: `groups` data groups, a USER partition in the group of its
/// user (so one user's rows in every table commit in one group), a SHARED table in the group
/// of its table. The hash is FNV-1a (64-bit) of the id's little-endian bytes, fixed so that
/// placement never changes between versions. A single node has one group.
///
/// With `shared_apart` (a cluster whose nodes store only the groups they vote in), every
/// SHARED table is in group 0, which every node stores, and users are spread over the
/// others: a statement or subscription reads at most one user's partitions (no role reads
/// another's, SPEC §4), so any node storing that user's group can answer it whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    groups: u16,
    shared_apart: bool,
}

impl Placement {
    /// Most data groups a cluster may have (each is a Raft group with its own heartbeats).
    pub(crate) const MAX_GROUPS: u16 = 64;

    /// One group holding every partition (the single node).
    pub(crate) const SINGLE: Placement = Placement { groups: 1, shared_apart: false };

    /// The group of every SHARED table when they are kept apart from users' partitions.
    pub(crate) const SHARED_GROUP: DataGroup = DataGroup(0);

    /// `groups` data groups (1 to [`Placement::MAX_GROUPS`]).
    pub(crate) fn new(groups: u16) -> Result<Placement> {
        if groups == 0 || groups > Self::MAX_GROUPS {
            return Err(KalamError::InvalidRequest(format!(
                "data groups must be between 1 and {}, not {groups}",
                Self::MAX_GROUPS
            )));
        }
        Ok(Placement { groups, shared_apart: false })
    }

    /// `groups` data groups, SHARED tables all in [`Placement::SHARED_GROUP`] and users'
    /// partitions spread over the others (2 to [`Placement::MAX_GROUPS`] groups).
    pub(crate) fn with_shared_apart(groups: u16) -> Result<Placement> {
        if groups < 2 {
            return Err(KalamError::InvalidRequest(format!(
                "storing groups apart needs at least 2 data groups (one for SHARED tables), not {groups}"
            )));
        }
        Ok(Placement { shared_apart: true, ..Placement::new(groups)? })
    }

    /// Whether SHARED tables are all in [`Placement::SHARED_GROUP`], apart from users.
    pub(crate) fn shared_apart(self) -> bool {
        self.shared_apart
    }

    /// How many data groups there are.
    pub(crate) fn groups(self) -> u16 {
        self.groups
    }

    /// Every group, in order.
    pub(crate) fn all(self) -> impl Iterator<Item = DataGroup> {
        (0..self.groups).map(DataGroup)
    }

    /// The group of `table`'s partition `partition`.
    pub(crate) fn group_of(self, table: TableId, partition: Partition) -> DataGroup {
        match (partition, self.shared_apart) {
            (Partition::Shared, true) => Self::SHARED_GROUP,
            (Partition::Shared, false) => self.hashed(table.0, 0),
            (Partition::User(user), true) => self.hashed(user.0, 1),
            (Partition::User(user), false) => self.hashed(user.0, 0),
        }
    }

    /// `id` hashed over the groups from `first` on.
    fn hashed(self, id: u64, first: u16) -> DataGroup {
        let span = u64::from(self.groups - first);
        DataGroup(first + (fnv1a(&id.to_le_bytes()) % span) as u16)
    }
}

/// 64-bit FNV-1a: simple, and stable by definition (placement must never change).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Snowflake ids: 41 bits of milliseconds since 2024-01-01, 10 bits of node id, 12 bits of
/// sequence. Monotonic per process even if the wall clock steps back.
#[derive(Debug)]
pub(crate) struct SnowflakeGenerator {
    node: u64,
    state: parking_lot::Mutex<(u64, u64)>,
}

const SNOWFLAKE_EPOCH_MS: u64 = 1_704_067_200_000;

impl SnowflakeGenerator {
    pub(crate) fn new(node: u16) -> Self {
        SnowflakeGenerator { node: (node as u64) & 0x3ff, state: parking_lot::Mutex::new((0, 0)) }
    }

    pub(crate) fn next(&self) -> i64 {
        let now = (crate::clock::now_micros() as u64 / 1000).saturating_sub(SNOWFLAKE_EPOCH_MS);
        let mut state = self.state.lock();
        let (last_ms, seq) = *state;
        let (ms, seq) = if now > last_ms {
            (now, 0)
        } else if seq < 0xfff {
            (last_ms, seq + 1)
        } else {
            (last_ms + 1, 0)
        };
        *state = (ms, seq);
        ((ms << 22) | (self.node << 12) | seq) as i64
    }
}

/// ULIDs in the spec's monotonic mode: within one millisecond each is the previous plus one,
/// so the ids of one multi-row INSERT sort in insertion order. Monotonic per process even if
/// the wall clock steps back.
#[derive(Default)]
pub(crate) struct UlidGenerator {
    state: parking_lot::Mutex<ulid::Generator>,
}

impl std::fmt::Debug for UlidGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UlidGenerator")
    }
}

impl UlidGenerator {
    pub(crate) fn next(&self) -> ulid::Ulid {
        let mut generator = self.state.lock();
        match generator.generate() {
            Ok(id) => id,
            // 2^80 ids in one millisecond: move on to the next one.
            Err(_) => {
                let next_ms = std::time::SystemTime::now() + std::time::Duration::from_millis(1);
                generator.generate_from_datetime(next_ms).unwrap_or_else(|_| ulid::Ulid::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_increase() {
        let g = UlidGenerator::default();
        let mut last = g.next();
        for _ in 0..10_000 {
            let id = g.next();
            assert!(id > last);
            assert!(id.to_string() > last.to_string(), "the text form sorts the same way");
            last = id;
        }
    }

    #[test]
    fn snowflakes_increase() {
        let g = SnowflakeGenerator::new(1);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = g.next();
            assert!(id > last);
            last = id;
        }
    }

    #[test]
    fn identifiers_are_validated_and_lowercased() {
        assert_eq!(normalize_ident("table", "Todos_1").unwrap(), "todos_1");
        assert!(normalize_ident("table", "1abc").is_err());
        assert!(normalize_ident("table", "a-b").is_err());
        assert!(normalize_ident("table", &"a".repeat(65)).is_err());
    }

    /// Placement is part of the on-disk and on-wire contract: these values must never change.
    #[test]
    fn placement_is_fixed_and_spreads_partitions() {
        let p = Placement::new(8).unwrap();
        let user = |u| Partition::User(UserId(u));
        let groups: Vec<u16> = [1, 2, 42, 1000].into_iter().map(|u| p.group_of(TableId(7), user(u)).0).collect();
        assert_eq!(groups, [4, 7, 7, 4]);
        // One user's partitions of every table are in one group; a SHARED table by its id.
        assert_eq!(p.group_of(TableId(1), user(42)), p.group_of(TableId(99), user(42)));
        assert_eq!(p.group_of(TableId(42), Partition::Shared), DataGroup(7));
        let mut counts = [0u32; 8];
        for u in 1..=8_000 {
            counts[p.group_of(TableId(1), user(u)).0 as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..=1200).contains(c)), "{counts:?}");
        assert!(Placement::SINGLE.all().eq([DataGroup(0)]));
        assert!(Placement::new(0).is_err() && Placement::new(Placement::MAX_GROUPS + 1).is_err());
    }
}
