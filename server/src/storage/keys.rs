//! Key layout of the `rows`, `row_index` and `mutations` column families.
//!
//! ```text
//! rows:      table_id (8, BE) | partition (8, BE) | primary key (order-preserving)
//! row_index: table_id (8, BE) | partition (8, BE) | _updated (8, BE) -> primary key
//! mutations: 'g' | data group (2, BE) | user (8, BE) | client_id | 0 | seq (8, BE)
//! ```
//! The partition is the owner's user id for USER tables and 0 for SHARED tables, so each
//! user's rows are one contiguous range, and within it the index is ordered by `_updated`.

use crate::error::{KalamError, Result};
use crate::ids::{DataGroup, Partition, TableId, UserId};
use crate::values::Value;

pub(crate) fn table_prefix(table: TableId) -> [u8; 8] {
    table.0.to_be_bytes()
}

pub(crate) fn partition_prefix(table: TableId, partition: Partition) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&table.0.to_be_bytes());
    k[8..].copy_from_slice(&partition.key().to_be_bytes());
    k
}

pub(crate) fn row_key(table: TableId, partition: Partition, pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + pk.len());
    k.extend_from_slice(&partition_prefix(table, partition));
    k.extend_from_slice(pk);
    k
}

pub(crate) fn index_key(table: TableId, partition: Partition, updated: i64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&partition_prefix(table, partition));
    k[16..].copy_from_slice(&(updated as u64).to_be_bytes());
    k
}

/// `_updated` from a `row_index` key.
pub(crate) fn index_key_updated(key: &[u8]) -> Option<i64> {
    Some(u64::from_be_bytes(key.get(16..24)?.try_into().ok()?) as i64)
}

/// Order-preserving encoding of a primary key value (integers sign-flipped big-endian, text
/// as UTF-8; the key is the last key component, so text needs no escaping).
pub(crate) fn encode_pk(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::Int(i) => Ok(((*i as u64) ^ (1 << 63)).to_be_bytes().to_vec()),
        Value::Text(s) => Ok(s.as_bytes().to_vec()),
        Value::Null => Err(KalamError::Validation("primary key cannot be NULL".into())),
        other => Err(KalamError::Validation(format!("unsupported primary key value {other:?}"))),
    }
}

/// Inverse of [`encode_pk`] for a key of an integer (`is_int`) or text column.
#[cfg(test)]
pub(crate) fn decode_pk(bytes: &[u8], is_int: bool) -> Result<Value> {
    if is_int {
        let arr: [u8; 8] = bytes.try_into().map_err(|_| KalamError::Corrupt("integer key".into()))?;
        Ok(Value::Int((u64::from_be_bytes(arr) ^ (1 << 63)) as i64))
    } else {
        Ok(Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| KalamError::Corrupt("text key".into()))?))
    }
}

/// The first byte of a `mutations` key. Keys written before outcome records were kept by data
/// group start with the user id's high byte, 0.
pub(crate) const MUTATION_KEYED_BY_GROUP: u8 = b'g';

/// The key of a mutation message's outcome record, kept in data group `group`.
pub(crate) fn mutation_key(group: DataGroup, user: UserId, client_id: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + 8 + client_id.len() + 9);
    k.push(MUTATION_KEYED_BY_GROUP);
    k.extend_from_slice(&group.0.to_be_bytes());
    k.extend_from_slice(&user.0.to_be_bytes());
    k.extend_from_slice(client_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The data group a `mutations` key names; `None` for a key of another format.
pub(crate) fn mutation_key_group(key: &[u8]) -> Option<DataGroup> {
    match key {
        [MUTATION_KEYED_BY_GROUP, hi, lo, ..] => Some(DataGroup(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    #[test]
    fn integer_keys_sort_numerically() {
        let mut vals = vec![-5i64, 3, i64::MIN, 0, i64::MAX, -1];
        let mut keys: Vec<_> = vals.iter().map(|v| encode_pk(&Value::Int(*v)).unwrap()).collect();
        keys.sort();
        vals.sort();
        let decoded: Vec<i64> = keys
            .iter()
            .map(|k| match decode_pk(k, true).unwrap() {
                Value::Int(i) => i,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(decoded, vals);
    }

    #[test]
    fn partitions_are_contiguous_and_distinct() {
        let t = TableId(7);
        let a = row_key(t, Partition::User(UserId(1)), b"zzz");
        let b = row_key(t, Partition::User(UserId(2)), b"");
        assert!(a < b);
        assert!(a.starts_with(&partition_prefix(t, Partition::User(UserId(1)))));
        assert!(!b.starts_with(&partition_prefix(t, Partition::User(UserId(1)))));
        assert_eq!(index_key_updated(&index_key(t, Partition::Shared, 1234)), Some(1234));
    }
}
