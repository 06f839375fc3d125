//! Which replicated state each key of the hot tier belongs to: what a snapshot of a Raft
//! group carries and what installing one replaces (docs/cluster.md "Data groups").
//!
//! | owner | keys |
//! |---|---|
//! | [`Owner::Catalog`] | `catalog`: `ns/`, `table/`, `schema/`, `storage/`, `user/`, `seq/table`, `seq/user` |
//! | [`Owner::Data`] | `rows`, `row_index` (by table and partition); `mutations` (by the group the message committed in); `catalog`: `manifest/`, `flush/`, `compact/` (by table and partition: the manifests of shared storages, the pending work on the node's own storage), `seq/clock…` (by group) |
//! | [`Owner::RaftState`] | `catalog`: `raft/applied…`, `raft/membership…` (by Raft group), `raft/seeding` (the metadata group) |
//! | [`Owner::Node`] | `catalog`: `job/`, `seq/job` (this node's jobs), `raft/data_groups`, and anything else |

use super::{CF_CATALOG, CF_MUTATIONS, CF_ROW_INDEX, CF_ROWS, COLUMN_FAMILIES, Store};
use crate::error::Result;
use crate::ids::{DataGroup, Partition, Placement, TableId};
use kalamdb_raft::GroupId;
use rocksdb::WriteBatch;

/// Who a key of the hot tier belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The catalog (the metadata group's state).
    Catalog,
    /// A data group's rows and records.
    Data(DataGroup),
    /// A Raft group's own records in the state machine (its applied position, its members).
    RaftState(GroupId),
    /// This node alone: never replicated, kept when a snapshot is installed.
    Node,
}

/// The owner of `key` in column family `cf`.
pub(crate) fn owner_of(cf: &str, key: &[u8], placement: Placement) -> Owner {
    let be = |bytes: &[u8]| bytes.try_into().ok().map(u64::from_be_bytes);
    match cf {
        CF_ROWS | CF_ROW_INDEX => match (key.get(..8).and_then(be), key.get(8..16).and_then(be)) {
            (Some(table), Some(partition)) => {
                Owner::Data(placement.group_of(TableId(table), Partition::from_key(partition)))
            }
            _ => Owner::Node,
        },
        // Keyed by the group the message committed in.
        CF_MUTATIONS => match super::keys::mutation_key_group(key) {
            Some(group) if group.0 < placement.groups() => Owner::Data(group),
            _ => Owner::Node,
        },
        CF_CATALOG => catalog_owner(key, placement),
        _ => Owner::Node,
    }
}

fn catalog_owner(key: &[u8], placement: Placement) -> Owner {
    const CATALOG: [&[u8]; 5] = [b"ns/", b"table/", b"schema/", b"storage/", b"user/"];
    if CATALOG.iter().any(|p| key.starts_with(p)) || key == b"seq/table" || key == b"seq/user" {
        return Owner::Catalog;
    }
    if key == b"raft/seeding" {
        return Owner::RaftState(GroupId(0));
    }
    for prefix in [&b"raft/applied"[..], b"raft/membership"] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return match rest {
                b"" => Owner::RaftState(GroupId(0)),
                _ => rest
                    .strip_prefix(b"/")
                    .and_then(|g| std::str::from_utf8(g).ok())
                    .and_then(|g| u32::from_str_radix(g, 16).ok())
                    .map_or(Owner::Node, |g| Owner::RaftState(GroupId(g))),
            };
        }
    }
    if key == b"seq/clock" {
        return Owner::Data(DataGroup(0));
    }
    if let Some(group) = key.strip_prefix(b"seq/clock/") {
        return std::str::from_utf8(group)
            .ok()
            .and_then(|g| u16::from_str_radix(g, 16).ok())
            .map_or(Owner::Node, |g| Owner::Data(DataGroup(g)));
    }
    let by_partition = [&b"manifest/"[..], b"flush/", b"compact/"];
    if let Some(rest) = by_partition.iter().find_map(|p| key.strip_prefix(*p)) {
        let hex = |s: Option<&[u8]>| {
            s.and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| u64::from_str_radix(s, 16).ok())
        };
        let mut parts = rest.split(|b| *b == b'/');
        return match (hex(parts.next()), hex(parts.next())) {
            (Some(table), Some(partition)) => {
                Owner::Data(placement.group_of(TableId(table), Partition::from_key(partition)))
            }
            _ => Owner::Node,
        };
    }
    Owner::Node
}

/// How many bytes of keys and values a batch of [`replace_owned`] holds at most.
const BATCH_BYTES: usize = 4 << 20;

/// Makes `live`'s keys of the owners `wanted` accepts those of `from` (a snapshot's
/// database): deletes them from `live`, then copies `from`'s, in batches. Keys of other
/// owners are left as they are. Not atomic, but repeatable: run again after a crash, it
/// ends in the same state. Answers how many keys it deleted and copied.
pub(crate) fn replace_owned(
    live: &Store,
    from: &Store,
    placement: Placement,
    wanted: impl Fn(Owner) -> bool,
) -> Result<(u64, u64)> {
    rewrite_owned(live, Some(from), placement, wanted)
}

/// Deletes `live`'s keys of the owners `wanted` accepts, in batches (repeatable like
/// [`replace_owned`]). Answers how many it deleted.
pub(crate) fn delete_owned(live: &Store, placement: Placement, wanted: impl Fn(Owner) -> bool) -> Result<u64> {
    rewrite_owned(live, None, placement, wanted).map(|(deleted, _)| deleted)
}

/// [`replace_owned`], or [`delete_owned`] without `from`.
fn rewrite_owned(
    live: &Store,
    from: Option<&Store>,
    placement: Placement,
    wanted: impl Fn(Owner) -> bool,
) -> Result<(u64, u64)> {
    let (mut deleted, mut copied) = (0, 0);
    for cf_name in COLUMN_FAMILIES {
        let cf = live.cf(cf_name);
        // Deletes first (the iterator reads the keys as they were when it started), then
        // the copies: a key in both ends with the snapshot's value.
        for (source, delete) in std::iter::once((live, true)).chain(from.map(|f| (f, false))) {
            let mut batch = WriteBatch::default();
            let mut failed = None;
            for_each_owned(source, cf_name, placement, &wanted, |k, v| {
                match delete {
                    true => {
                        batch.delete_cf(&cf, k);
                        deleted += 1;
                    }
                    false => {
                        batch.put_cf(&cf, k, v);
                        copied += 1;
                    }
                }
                if batch.size_in_bytes() >= BATCH_BYTES
                    && let Err(e) = live.write(std::mem::take(&mut batch))
                {
                    failed = Some(e);
                    return false;
                }
                true
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            if !batch.is_empty() {
                live.write(batch)?;
            }
        }
    }
    Ok((deleted, copied))
}

/// Calls `f` for every pair of column family `cf` whose owner `wanted` accepts, in key order,
/// until it returns `false`. Where keys start with their table and partition, it seeks past a
/// partition of an owner not wanted rather than reading its keys, so a Raft group's keys are
/// found in time proportional to them and to the number of partitions, not to the database.
fn for_each_owned(
    store: &Store,
    cf: &str,
    placement: Placement,
    wanted: &impl Fn(Owner) -> bool,
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    let handle = store.cf(cf);
    let mut it = store.db().raw_iterator_cf(&handle);
    it.seek_to_first();
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
        if wanted(owner_of(cf, k, placement)) {
            if !f(k, v) {
                break;
            }
            it.next();
        } else if let Some(next) = next_partition(cf, k) {
            it.seek(next);
        } else {
            it.next();
        }
    }
    it.status()?;
    Ok(())
}

/// In the column families keyed by table and partition first: the smallest key after every
/// key of `key`'s partition (`None` after the last possible one, and in other families).
fn next_partition(cf: &str, key: &[u8]) -> Option<[u8; 16]> {
    if !matches!(cf, CF_ROWS | CF_ROW_INDEX) {
        return None;
    }
    let prefix: [u8; 16] = key.get(..16)?.try_into().ok()?;
    Some(u128::from_be_bytes(prefix).checked_add(1)?.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::storage::keys;

    /// One group's keys are copied whole, though the copy seeks past other groups' partitions,
    /// at every edge of the key space (shared partitions, the last table and user ids).
    #[test]
    fn a_groups_keys_are_copied_whole_and_no_others() {
        let p = Placement::new(8).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let from = Store::open(&dir.path().join("from"), false).unwrap();
        let to = Store::open(&dir.path().join("to"), false).unwrap();
        let partitions = (0..40).chain([u64::MAX - 1, u64::MAX]).map(Partition::from_key);
        let keys: Vec<(TableId, Partition, Vec<u8>)> = [1, 3, u64::MAX]
            .into_iter()
            .flat_map(|t| partitions.clone().map(move |part| (TableId(t), part)))
            .flat_map(|(t, part)| [&b"a"[..], b"b"].map(|pk| (t, part, keys::row_key(t, part, pk))))
            .collect();
        let mut batch = WriteBatch::default();
        for (_, _, key) in &keys {
            batch.put_cf(&from.cf(CF_ROWS), key, b"v");
        }
        from.write(batch).unwrap();
        for group in (0..8).map(DataGroup) {
            let mut expected: Vec<Vec<u8>> =
                keys.iter().filter(|(t, part, _)| p.group_of(*t, *part) == group).map(|(_, _, k)| k.clone()).collect();
            expected.sort();
            delete_owned(&to, p, |_| true).unwrap();
            let (_, copied) = replace_owned(&to, &from, p, |o| o == Owner::Data(group)).unwrap();
            let got: Vec<Vec<u8>> =
                to.scan_prefix(CF_ROWS, b"").unwrap().into_iter().map(|(k, _)| k.to_vec()).collect();
            assert_eq!(got, expected, "group {}", group.0);
            assert_eq!(copied, expected.len() as u64);
        }
    }

    /// Every kind of key the server writes, with its owner (the key formats come from the
    /// modules that write them, so a changed format shows here).
    #[test]
    fn every_key_has_its_owner() {
        let p = Placement::new(8).unwrap();
        let (table, user) = (TableId(7), Partition::User(UserId(42)));
        let group = p.group_of(table, user);
        let shared_group = p.group_of(table, Partition::Shared);
        let manifest = crate::cold::manifest_key(table, user);
        let cases: Vec<(&str, Vec<u8>, Owner)> = vec![
            (CF_ROWS, keys::row_key(table, user, b"pk"), Owner::Data(group)),
            (CF_ROWS, keys::row_key(table, Partition::Shared, b"pk"), Owner::Data(shared_group)),
            (CF_ROW_INDEX, keys::index_key(table, user, 5).to_vec(), Owner::Data(group)),
            (
                CF_MUTATIONS,
                [&b"g\0\x05"[..], &42u64.to_be_bytes(), b"client\0", &[0; 8]].concat(),
                Owner::Data(DataGroup(5)),
            ),
            (CF_MUTATIONS, [&b"g\0\x09"[..], &42u64.to_be_bytes(), b"client\0", &[0; 8]].concat(), Owner::Node),
            (CF_CATALOG, manifest, Owner::Data(group)),
            (CF_CATALOG, b"seq/clock".to_vec(), Owner::Data(DataGroup(0))),
            (CF_CATALOG, b"seq/clock/0003".to_vec(), Owner::Data(DataGroup(3))),
            (CF_CATALOG, b"table/0000000000000007".to_vec(), Owner::Catalog),
            (CF_CATALOG, b"ns/app".to_vec(), Owner::Catalog),
            (CF_CATALOG, b"seq/user".to_vec(), Owner::Catalog),
            (CF_CATALOG, b"raft/applied".to_vec(), Owner::RaftState(GroupId(0))),
            (CF_CATALOG, b"raft/membership".to_vec(), Owner::RaftState(GroupId(0))),
            (CF_CATALOG, b"raft/seeding".to_vec(), Owner::RaftState(GroupId(0))),
            (CF_CATALOG, b"raft/applied/0003".to_vec(), Owner::RaftState(GroupId(3))),
            (CF_CATALOG, b"raft/membership/000a".to_vec(), Owner::RaftState(GroupId(10))),
            (CF_CATALOG, b"raft/data_groups".to_vec(), Owner::Node),
            (CF_CATALOG, b"flush/0000000000000007/000000000000002a".to_vec(), Owner::Data(group)),
            (CF_CATALOG, b"compact/0000000000000007/000000000000002a".to_vec(), Owner::Data(group)),
            (CF_CATALOG, b"job/0000000000000001".to_vec(), Owner::Node),
            (CF_CATALOG, b"seq/job".to_vec(), Owner::Node),
            (CF_ROWS, b"short".to_vec(), Owner::Node),
        ];
        for (cf, key, owner) in cases {
            assert_eq!(owner_of(cf, &key, p), owner, "{cf} {}", String::from_utf8_lossy(&key));
        }
    }
}
