//! CRDT_TEXT values: each cell is a Yjs document (through [`yrs`]), shared by the server and
//! clients so both edit, encode and merge it the same way.
//!
//! - The document's root is the `Y.Text` named [`ROOT`] (`"text"`): a JavaScript `yjs` client
//!   reads it with `doc.getText("text")`.
//! - Offsets are UTF-16 code units, as in JavaScript.
//! - A document's *state* is a Yjs **v1** update encoding the whole document
//!   (`Y.encodeStateAsUpdate(doc)`); applying it to an empty document rebuilds it.
//! - On the wire a value is a [`CrdtValue`] `{"text", "state"}` (state in standard padded
//!   base64); a client writes a [`CrdtWrite`]: a plain string (replace the text as a minimal
//!   edit) or `{"update": "<base64 v1 update>"}` (merged into the stored document).
//!
//! Every document made here gets a fresh random client id (53 bits, safe for JavaScript), so
//! edits made by one replica never collide with another's.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::panic::{AssertUnwindSafe, catch_unwind};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// Name of the root `Y.Text` holding a cell's text.
pub const ROOT: &str = "text";

/// Why a CRDT value or update could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdtError {
    #[error("invalid base64: {0}")]
    Base64(String),
    #[error("malformed Yjs v1 update: {0}")]
    MalformedUpdate(String),
    #[error("malformed Yjs state vector: {0}")]
    MalformedStateVector(String),
}

/// One CRDT_TEXT document: a yrs [`Doc`] whose root `Y.Text` [`ROOT`] holds the text.
pub struct CrdtText {
    doc: Doc,
    text: TextRef,
}

impl std::fmt::Debug for CrdtText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdtText").field("client_id", &self.client_id()).field("text", &self.text()).finish()
    }
}

impl Default for CrdtText {
    fn default() -> Self {
        Self::new()
    }
}

impl CrdtText {
    /// An empty document with a fresh random client id.
    pub fn new() -> Self {
        Self::with_client_id(ClientID::random().get())
    }

    /// An empty document editing as `client_id` (below 2^53). The caller guarantees that no
    /// other replica edits with the same id; prefer [`CrdtText::new`].
    pub fn with_client_id(client_id: u64) -> Self {
        let doc = Doc::with_options(Options {
            client_id: ClientID::new(client_id & ((1u64 << 53) - 1)),
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        let text = doc.get_or_insert_text(ROOT);
        CrdtText { doc, text }
    }

    /// A new document (fresh client id) holding `text`.
    pub fn from_text(text: &str) -> Self {
        let mut doc = Self::new();
        doc.replace_text(text);
        doc
    }

    /// Rebuilds a document from its state (a v1 update), with a fresh client id for the edits
    /// made through it.
    pub fn from_state(state: &[u8]) -> Result<Self, CrdtError> {
        let mut doc = Self::new();
        doc.apply_update(state)?;
        Ok(doc)
    }

    /// The client id this document's own edits are written under.
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// The current text.
    pub fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// The whole document as a v1 update (what [`CrdtText::from_state`] takes back).
    pub fn state(&self) -> Vec<u8> {
        self.doc.transact().encode_state_as_update_v1(&StateVector::default())
    }

    /// The v1-encoded state vector: what this replica has seen, for [`CrdtText::diff`].
    pub fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// The v1 update another replica with `state_vector` is missing (everything if empty).
    pub fn diff(&self, state_vector: &[u8]) -> Result<Vec<u8>, CrdtError> {
        let sv = if state_vector.is_empty() {
            StateVector::default()
        } else {
            StateVector::decode_v1(state_vector).map_err(|e| CrdtError::MalformedStateVector(e.to_string()))?
        };
        Ok(self.doc.transact().encode_diff_v1(&sv))
    }

    /// Merges a v1 update (a state, a diff or one transaction's edits). Updates commute and
    /// are idempotent. A malformed update is an error; the document may then hold part of it,
    /// so callers that need all-or-nothing apply to a copy.
    pub fn apply_update(&mut self, update: &[u8]) -> Result<(), CrdtError> {
        let update = decode_update(update)?;
        // yrs may panic on inputs it cannot integrate; untrusted bytes must not take the
        // process down.
        let doc = &self.doc;
        catch_unwind(AssertUnwindSafe(|| doc.transact_mut().apply_update(update)))
            .map_err(|_| CrdtError::MalformedUpdate("the update cannot be integrated".into()))?
            .map_err(|e| CrdtError::MalformedUpdate(e.to_string()))
    }

    /// True if an applied update referenced edits this document has never seen, so part of it
    /// waits (kept in [`CrdtText::state`]) instead of showing in the text.
    pub fn has_pending(&self) -> bool {
        self.doc.transact().has_missing_updates()
    }

    /// Inserts `chunk` at `index` (UTF-16 code units, clamped to the length).
    pub fn insert(&mut self, index: u32, chunk: &str) {
        let mut txn = self.doc.transact_mut();
        let index = index.min(self.text.len(&txn));
        self.text.insert(&mut txn, index, chunk);
    }

    /// Deletes `len` UTF-16 code units from `index` (clamped to the length).
    pub fn delete(&mut self, index: u32, len: u32) {
        let mut txn = self.doc.transact_mut();
        let total = self.text.len(&txn);
        let index = index.min(total);
        let len = len.min(total - index);
        if len > 0 {
            self.text.remove_range(&mut txn, index, len);
        }
    }

    /// Makes the text equal `new_text` with a minimal edit: the common prefix and suffix stay,
    /// the middle is one delete and one insert. Edits other replicas made outside that middle
    /// therefore survive a merge. Returns whether anything changed.
    pub fn replace_text(&mut self, new_text: &str) -> bool {
        let old = self.text();
        if old == new_text {
            return false;
        }
        let (start, old_mid, new_mid) = changed_middle(&old, new_text);
        let index = utf16_len(&old[..start]);
        let removed = utf16_len(old_mid);
        let mut txn = self.doc.transact_mut();
        if removed > 0 {
            self.text.remove_range(&mut txn, index, removed);
        }
        if !new_mid.is_empty() {
            self.text.insert(&mut txn, index, new_mid);
        }
        true
    }

    /// The wire form `{"text", "state"}`.
    pub fn to_value(&self) -> CrdtValue {
        CrdtValue::new(self.text(), &self.state())
    }
}

/// Merges several v1 updates (states) into one, without building a document.
pub fn merge_updates<B: AsRef<[u8]>>(updates: impl IntoIterator<Item = B>) -> Result<Vec<u8>, CrdtError> {
    let mut parsed = Vec::new();
    for u in updates {
        parsed.push(decode_update(u.as_ref())?);
    }
    Ok(Update::merge_updates(parsed).encode_v1())
}

/// Checks that `update` decodes as a v1 update, without applying it.
pub fn validate_update(update: &[u8]) -> Result<(), CrdtError> {
    decode_update(update).map(|_| ())
}

fn decode_update(update: &[u8]) -> Result<Update, CrdtError> {
    if update.is_empty() {
        return Err(CrdtError::MalformedUpdate("empty".into()));
    }
    catch_unwind(|| Update::decode_v1(update))
        .map_err(|_| CrdtError::MalformedUpdate("cannot be decoded".into()))?
        .map_err(|e| CrdtError::MalformedUpdate(e.to_string()))
}

/// `(byte offset of the change, old middle, new middle)` after removing the common prefix and
/// suffix, cut at character boundaries so no code point is split.
fn changed_middle<'a, 'b>(old: &'a str, new: &'b str) -> (usize, &'a str, &'b str) {
    let prefix: usize = old.chars().zip(new.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
    let (old_rest, new_rest) = (&old[prefix..], &new[prefix..]);
    let suffix: usize =
        old_rest.chars().rev().zip(new_rest.chars().rev()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
    (prefix, &old_rest[..old_rest.len() - suffix], &new_rest[..new_rest.len() - suffix])
}

fn utf16_len(s: &str) -> u32 {
    s.encode_utf16().count() as u32
}

/// Standard padded base64, the encoding of every Yjs update on the wire.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads standard padded base64.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, CrdtError> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| CrdtError::Base64(e.to_string()))
}

/// A CRDT_TEXT value as sync frames carry it: the text and the whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrdtValue {
    /// The document's text (what SQL reads).
    pub text: String,
    /// The document state: a Yjs v1 update, standard padded base64.
    pub state: String,
}

impl CrdtValue {
    pub fn new(text: String, state: &[u8]) -> Self {
        CrdtValue { text, state: encode_base64(state) }
    }

    /// The decoded state bytes.
    pub fn state_bytes(&self) -> Result<Vec<u8>, CrdtError> {
        decode_base64(&self.state)
    }

    /// The document (with a fresh client id for local edits).
    pub fn to_doc(&self) -> Result<CrdtText, CrdtError> {
        CrdtText::from_state(&self.state_bytes()?)
    }
}

/// What a client may write to a CRDT_TEXT column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CrdtWrite {
    /// Replace the text, applied as a minimal edit to the stored document (a new document
    /// when inserting).
    Text(String),
    /// Merge a Yjs v1 update into the stored document (an empty one when inserting).
    Update(CrdtUpdate),
}

/// `{"update": "<base64 v1 update>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrdtUpdate {
    pub update: String,
}

impl CrdtWrite {
    /// A write merging `update` (v1 bytes).
    pub fn update(update: &[u8]) -> Self {
        CrdtWrite::Update(CrdtUpdate { update: encode_base64(update) })
    }

    /// Reads a JSON value; `None` if it is neither a string nor `{"update": "..."}`.
    pub fn from_json(json: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(json.clone()).ok()
    }

    /// Applies this write to `doc`.
    pub fn apply_to(&self, doc: &mut CrdtText) -> Result<(), CrdtError> {
        match self {
            CrdtWrite::Text(t) => {
                doc.replace_text(t);
                Ok(())
            }
            CrdtWrite::Update(u) => doc.apply_update(&decode_base64(&u.update)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(states: &[Vec<u8>]) -> CrdtText {
        let mut doc = CrdtText::new();
        for s in states {
            doc.apply_update(s).unwrap();
        }
        doc
    }

    #[test]
    fn crdt_concurrent_edits_merge_without_loss() {
        let base = CrdtText::from_text("hello world").state();
        let mut a = CrdtText::from_state(&base).unwrap();
        let mut b = CrdtText::from_state(&base).unwrap();
        assert_ne!(a.client_id(), b.client_id());
        a.insert(0, ">> ");
        b.insert(11, "!");
        let a_then_b = merged(&[base.clone(), a.state(), b.state()]);
        let b_then_a = merged(&[b.state(), a.state()]);
        assert_eq!(a_then_b.text(), ">> hello world!");
        assert_eq!(b_then_a.text(), ">> hello world!");
        // Re-applying is harmless.
        let mut again = CrdtText::from_state(&a_then_b.state()).unwrap();
        again.apply_update(&b.state()).unwrap();
        assert_eq!(again.text(), ">> hello world!");
        let one = merge_updates([a.state(), b.state()]).unwrap();
        assert_eq!(CrdtText::from_state(&one).unwrap().text(), ">> hello world!");
    }

    #[test]
    fn crdt_diff_carries_only_missing_edits() {
        let mut a = CrdtText::from_text("abc");
        let mut b = CrdtText::from_state(&a.state()).unwrap();
        a.insert(3, "d");
        let diff = a.diff(&b.state_vector()).unwrap();
        b.apply_update(&diff).unwrap();
        assert_eq!(b.text(), "abcd");
        assert!(!b.has_pending());
        // Without the base the diff cannot show yet: it waits as pending state.
        let mut empty = CrdtText::new();
        empty.apply_update(&diff).unwrap();
        assert_eq!(empty.text(), "");
        assert!(empty.has_pending());
    }

    #[test]
    fn crdt_replace_text_keeps_a_concurrent_insert() {
        let base = CrdtText::from_text("hello world").state();
        let mut client = CrdtText::from_state(&base).unwrap();
        client.insert(6, "big ");
        let mut server = CrdtText::from_state(&base).unwrap();
        assert!(server.replace_text("hello world!"));
        assert!(!server.replace_text("hello world!"));
        server.apply_update(&client.state()).unwrap();
        assert_eq!(server.text(), "hello big world!");
        // Replacing in the middle touches only the middle.
        let mut s2 = CrdtText::from_state(&base).unwrap();
        s2.replace_text("help world");
        s2.apply_update(&client.state()).unwrap();
        assert_eq!(s2.text(), "help big world");
    }

    #[test]
    fn crdt_non_ascii_round_trips_with_utf16_offsets() {
        let text = "héllo 👋🏽 wörld — 日本語";
        let doc = CrdtText::from_text(text);
        let copy = CrdtText::from_state(&doc.state()).unwrap();
        assert_eq!(copy.text(), text);
        // "a👋b": the emoji is two UTF-16 units, so "b" is at 3 as in JavaScript.
        let mut d = CrdtText::from_text("a👋b");
        d.insert(3, "X");
        assert_eq!(d.text(), "a👋Xb");
        d.replace_text("a👍Xb");
        assert_eq!(d.text(), "a👍Xb");
        d.replace_text("👍");
        assert_eq!(d.text(), "👍");
        let v = d.to_value();
        assert_eq!(v.to_doc().unwrap().text(), "👍");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["text"], "👍");
    }

    #[test]
    fn crdt_malformed_update_is_an_error() {
        let mut doc = CrdtText::from_text("keep");
        for bad in [&b""[..], &[0xff, 0xff, 0xff, 0xff, 0xff], &[1, 2, 3], b"not a yjs update at all"] {
            assert!(doc.apply_update(bad).is_err(), "{bad:?}");
            assert!(validate_update(bad).is_err(), "{bad:?}");
        }
        assert_eq!(doc.text(), "keep");
        assert!(CrdtText::from_state(&[7, 7, 7]).is_err());
        assert!(decode_base64("%%").is_err());
        assert!(doc.diff(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn crdt_writes_parse_from_json() {
        let state = CrdtText::from_text("x").state();
        assert_eq!(CrdtWrite::from_json(&serde_json::json!("hi")), Some(CrdtWrite::Text("hi".into())));
        let w = CrdtWrite::from_json(&serde_json::json!({ "update": encode_base64(&state) })).unwrap();
        assert_eq!(w, CrdtWrite::update(&state));
        let mut doc = CrdtText::new();
        w.apply_to(&mut doc).unwrap();
        assert_eq!(doc.text(), "x");
        assert_eq!(CrdtWrite::from_json(&serde_json::json!(5)), None);
        assert_eq!(CrdtWrite::from_json(&serde_json::json!({ "update": "x", "more": 1 })), None);
        assert_eq!(CrdtWrite::from_json(&serde_json::json!({ "text": "x" })), None);
    }
}
